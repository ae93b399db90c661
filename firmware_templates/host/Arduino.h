// The part of the Arduino API a tflw sketch uses, on a host or under qemu: Serial prints
// to stdout, micros() reads the C clock. `tflw firmware check` builds sketches with it.
#ifndef TFLW_HOST_ARDUINO_H_
#define TFLW_HOST_ARDUINO_H_

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

class HostSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  void print(const char* text) { fputs(text, stdout); }
  void print(int value) { printf("%d", value); }
  void print(long value) { printf("%ld", value); }
  void print(unsigned long value) { printf("%lu", value); }
  void print(double value, int digits = 2) { printf("%.*f", digits, value); }
  void println(const char* text) { printf("%s\n", text); }
  void println(int value) { printf("%d\n", value); }
  void println(long value) { printf("%ld\n", value); }
  void println(unsigned long value) { printf("%lu\n", value); }
};

inline HostSerial Serial;

inline unsigned long micros() {
  return static_cast<unsigned long>(clock() * (1000000.0 / CLOCKS_PER_SEC));
}

inline void delay(unsigned long) {}

#endif  // TFLW_HOST_ARDUINO_H_
