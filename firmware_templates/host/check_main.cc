// tflw firmware check: the sketch as written (its setup() and one loop()), then every
// sample of an input file through the same interpreter, outputs to a file.
// Built with -include Arduino.h and -DTFLW_SKETCH="path/to/sketch.ino".
#include <stdio.h>

#include TFLW_SKETCH

int main(int argc, char** argv) {
  const char* input_path = argc > 2 ? argv[1] : "tflw_inputs.bin";
  const char* output_path = argc > 2 ? argv[2] : "tflw_outputs.bin";
  setup();
  loop();
  FILE* inputs = fopen(input_path, "rb");
  FILE* outputs = fopen(output_path, "wb");
  if (inputs == nullptr || outputs == nullptr) {
    printf("tflw-error cannot open %s or %s\n", input_path, output_path);
    return 2;
  }
  long samples = 0;
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
    ++samples;
  }
  fclose(inputs);
  fclose(outputs);
  printf("tflw-samples %ld\ntflw-arena %lu\n", samples,
         static_cast<unsigned long>(interpreter->arena_used_bytes()));
  return 0;
}
