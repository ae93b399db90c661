// Stub: see tflm_api.h.
#include "tflm_api.h"
