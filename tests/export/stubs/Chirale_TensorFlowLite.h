// Stub of the Arduino library's umbrella header: the TFLite-Micro API is in tflm_api.h.
