// Reset for a Cortex-M4 under qemu-system-arm -M mps2-an386: FPU on, .bss zeroed,
// semihosting stdio (newlib's rdimon), static constructors, then main(). qemu loads the
// ELF's segments where they belong, so .data needs no copy.
#include <stdint.h>
#include <stdlib.h>

extern "C" {
extern uint32_t __bss_start__;
extern uint32_t __bss_end__;
extern uint32_t __stack_top__;
void __libc_init_array(void);
void initialise_monitor_handles(void);
int main(int argc, char** argv);

// What the C runtime's start files would define; this build links none (-nostartfiles).
void* __dso_handle = nullptr;
void _init(void) {}
void _fini(void) {}

void tflw_reset(void) {
  volatile uint32_t* cpacr = reinterpret_cast<volatile uint32_t*>(0xE000ED88);
  *cpacr |= 0xFu << 20;  // CP10 and CP11: the FPU that -mfloat-abi=hard code uses
  __asm volatile("dsb\n isb");
  for (uint32_t* word = &__bss_start__; word < &__bss_end__; ++word) {
    *word = 0;
  }
  initialise_monitor_handles();
  __libc_init_array();
  exit(main(0, nullptr));
}

void tflw_fault(void) {
  abort();
}

__attribute__((section(".vectors"), used)) const void* const tflw_vectors[16] = {
    &__stack_top__, reinterpret_cast<const void*>(tflw_reset),
    reinterpret_cast<const void*>(tflw_fault), reinterpret_cast<const void*>(tflw_fault),
    reinterpret_cast<const void*>(tflw_fault), reinterpret_cast<const void*>(tflw_fault),
    reinterpret_cast<const void*>(tflw_fault)};
}
