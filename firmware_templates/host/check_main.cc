// tflw firmware check: the sketch as written (its setup() and one loop()), then every
// sample of an input file through the same interpreter, outputs to a file.
// Built with -include Arduino.h, -DTFLW_SKETCH="path/to/sketch.ino" and
// -DTFLW_MODEL_ARRAY=<the C array the sketch runs>.
// With -DTFLW_RECORD_ARENA it also prints the arena's parts (see print_arena_parts).
// With -DTFLW_DUMP_TENSORS the inputs run through a second interpreter, on the same model
// and resolver, that keeps every tensor, and each tensor of each sample is written to
// tflw_tensors.bin (index, byte count, bytes): what tells which op's kernel differs.
#include <stdio.h>
#include <stdlib.h>

#include TFLW_SKETCH

#ifdef TFLW_RECORD_ARENA
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#endif

namespace {

// A 16-byte-aligned arena of `size` bytes from the heap, for a second interpreter.
[[maybe_unused]] uint8_t* heap_arena(size_t size) {
  uintptr_t block = reinterpret_cast<uintptr_t>(malloc(size + 16));
  return reinterpret_cast<uint8_t*>((block + 15) & ~static_cast<uintptr_t>(15));
}

}  // namespace

#ifdef TFLW_DUMP_TENSORS
#include "tensorflow/lite/micro/memory_helpers.h"

namespace {

tflite::MicroInterpreter* preserving_interpreter(FILE* dump) {
  // Every tensor kept: a few times the sketch's arena, from the heap.
  const size_t size = 8 * kTensorArenaSize + 65536;
  uint8_t* arena = heap_arena(size);
  static tflite::MicroInterpreter kept(tflite::GetModel(TFLW_MODEL_ARRAY), resolver, arena, size,
                                       nullptr, nullptr, true);
  if (kept.AllocateTensors() != kTfLiteOk || dump == nullptr) {
    printf("tflw-error the tensor-keeping interpreter did not allocate\n");
    exit(4);
  }
  return &kept;
}

void dump_tensors(tflite::MicroInterpreter* kept, FILE* dump) {
  const auto* tensors = tflite::GetModel(TFLW_MODEL_ARRAY)->subgraphs()->Get(0)->tensors();
  for (uint32_t i = 0; i < tensors->size(); ++i) {
    TfLiteEvalTensor* tensor = kept->GetTensor(static_cast<int>(i));
    size_t bytes = 0;
    if (tensor == nullptr || tflite::TfLiteEvalTensorByteLength(tensor, &bytes) != kTfLiteOk) {
      continue;
    }
    const uint32_t header[2] = {i, static_cast<uint32_t>(bytes)};
    fwrite(header, sizeof(header), 1, dump);
    fwrite(tensor->data.raw, 1, bytes, dump);
  }
}

}  // namespace
#endif

#ifdef TFLW_RECORD_ARENA
namespace {

// The sketch's arena split as TFLite-Micro's recording allocator sees it, from a second
// interpreter on the heap (the sketch's own arena is left as it is): planned tensors and
// scratch, persistent data, and each kind of persistent allocation.
void print_arena_parts() {
  const size_t size = 2 * kTensorArenaSize + 65536;
  uint8_t* arena = heap_arena(size);
  tflite::RecordingMicroInterpreter recording(tflite::GetModel(TFLW_MODEL_ARRAY), resolver,
                                              arena, size);
  if (recording.AllocateTensors() != kTfLiteOk) {
    return;
  }
  const tflite::RecordingMicroAllocator& allocator = recording.GetMicroAllocator();
  printf("tflw-arena-parts %lu %lu\n",
         static_cast<unsigned long>(allocator.GetSimpleMemoryAllocator()->GetNonPersistentUsedBytes()),
         static_cast<unsigned long>(allocator.GetSimpleMemoryAllocator()->GetPersistentUsedBytes()));
  for (int kind = 0; kind < static_cast<int>(tflite::RecordedAllocationType::kNumAllocationTypes);
       ++kind) {
    tflite::RecordedAllocation recorded =
        allocator.GetRecordedAllocation(static_cast<tflite::RecordedAllocationType>(kind));
    printf("tflw-allocation %d %lu %lu\n", kind, static_cast<unsigned long>(recorded.used_bytes),
           static_cast<unsigned long>(recorded.count));
  }
}

}  // namespace
#endif

int main(int argc, char** argv) {
  const char* input_path = argc > 2 ? argv[1] : "tflw_inputs.bin";
  const char* output_path = argc > 2 ? argv[2] : "tflw_outputs.bin";
  setvbuf(stdout, nullptr, _IONBF, 0);  // a sketch that halts loops forever: keep its words
  setup();
  loop();
#ifdef TFLW_RECORD_ARENA
  print_arena_parts();  // a separate build: the recorder's code is not the sketch's flash
#endif
  FILE* inputs = fopen(input_path, "rb");
  FILE* outputs = fopen(output_path, "wb");
  if (inputs == nullptr || outputs == nullptr) {
    printf("tflw-error cannot open %s or %s\n", input_path, output_path);
    return 2;
  }
  long samples = 0;
#ifdef TFLW_DUMP_TENSORS
  FILE* dump = fopen("tflw_tensors.bin", "wb");
  interpreter = preserving_interpreter(dump);
#endif
  while (true) {
    bool complete = true;
    for (size_t i = 0; i < interpreter->inputs_size() && complete; ++i) {
      TfLiteTensor* input = interpreter->input(i);
      complete = fread(input->data.raw, 1, input->bytes, inputs) == input->bytes;
    }
    if (!complete) {
      break;
    }
    if (interpreter->Invoke() != kTfLiteOk) {
      printf("tflw-error Invoke() failed on sample %ld\n", samples);
      return 3;
    }
    for (size_t i = 0; i < interpreter->outputs_size(); ++i) {
      TfLiteTensor* output = interpreter->output(i);
      fwrite(output->data.raw, 1, output->bytes, outputs);
    }
#ifdef TFLW_DUMP_TENSORS
    dump_tensors(interpreter, dump);
#endif
    ++samples;
  }
  fclose(inputs);
  fclose(outputs);
#ifdef TFLW_DUMP_TENSORS
  fclose(dump);
#endif
  printf("tflw-samples %ld\ntflw-arena %lu\n", samples,
         static_cast<unsigned long>(interpreter->arena_used_bytes()));
  return 0;
}
