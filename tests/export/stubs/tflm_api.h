// The part of TFLite-Micro's API that tflw's sketches use, declared as in its sources, so
// that a sketch compiles with -fsyntax-only without a TFLite-Micro tree. Each declaration
// after a "// tflm: PATH" line is checked against that file of a real tree by
// tests/export/test_firmware_compiles.py (where TFLW_TFLM_DIR names one).
#ifndef TFLW_TESTS_TFLM_API_H_
#define TFLW_TESTS_TFLM_API_H_

#include <stddef.h>
#include <stdint.h>

// tflm: tensorflow/lite/micro/micro_interpreter.h
#define TFLITE_SCHEMA_VERSION (3)

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef union TfLitePtrUnion {
  int32_t* i32;
  float* f;
  uint8_t* uint8;
  // tflm: tensorflow/lite/core/c/common.h
  int16_t* i16;
  // tflm: tensorflow/lite/core/c/common.h
  int8_t* int8;
} TfLitePtrUnion;

typedef struct TfLiteQuantizationParams {
  // tflm: tensorflow/compiler/mlir/lite/core/c/tflite_types.h
  float scale;
  // tflm: tensorflow/compiler/mlir/lite/core/c/tflite_types.h
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct TfLiteTensor {
  int type;
  // tflm: tensorflow/lite/core/c/common.h
  TfLitePtrUnion data;
  void* dims;
  // tflm: tensorflow/lite/core/c/common.h
  TfLiteQuantizationParams params;
  int allocation_type;
  // tflm: tensorflow/lite/core/c/common.h
  size_t bytes;
} TfLiteTensor;

namespace tflite {

struct Model {
  // tflm: tensorflow/lite/schema/schema_generated.h
  uint32_t version() const;
};

// tflm: tensorflow/lite/schema/schema_generated.h
inline const tflite::Model *GetModel(const void *buf) {
  return static_cast<const tflite::Model *>(buf);
}

class MicroOpResolver {};
class MicroResourceVariables;
class MicroProfilerInterface;

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  // tflm: tensorflow/lite/micro/micro_mutable_op_resolver.h
  explicit MicroMutableOpResolver() {}
#include "resolver_methods.inc"
};

class MicroInterpreter {
 public:
  // tflm: tensorflow/lite/micro/micro_interpreter.h
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                   uint8_t* tensor_arena, size_t tensor_arena_size,
                   MicroResourceVariables* resource_variables = nullptr,
                   MicroProfilerInterface* profiler = nullptr,
                   bool preserve_all_tensors = false);
  // tflm: tensorflow/lite/micro/micro_interpreter.h
  TfLiteStatus AllocateTensors();
  // tflm: tensorflow/lite/micro/micro_interpreter.h
  TfLiteStatus Invoke();
  // tflm: tensorflow/lite/micro/micro_interpreter.h
  TfLiteTensor* input(size_t index);
  // tflm: tensorflow/lite/micro/micro_interpreter.h
  TfLiteTensor* output(size_t index);
  // tflm: tensorflow/lite/micro/micro_interpreter.h
  size_t arena_used_bytes() const;
};

}  // namespace tflite

#endif  // TFLW_TESTS_TFLM_API_H_
