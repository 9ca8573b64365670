// Separable resizing of NHWC images as an XLA:CPU custom call (XLA's FFI): output row o blends the input rows
// that a sparse row matrix names (two for bilinear, one for nearest), then output column p the columns a sparse
// column matrix names. The same call with the transposed matrices is the gradient. XLA runs the same resize as
// two dense matrix products and the transposes between them, which read every input row for every output row.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// One axis's sparse matrix in compressed rows: output index o reads input indices[k] with weights[k] for k in
// [offsets[o], offsets[o + 1]).
struct Taps {
  ffi::Span<const int64_t> offsets;
  ffi::Span<const int64_t> indices;
  ffi::Span<const float> weights;
  int64_t outputs() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

float ToFloat(float value) { return value; }
float ToFloat(uint16_t bfloat16) {
  const uint32_t bits = static_cast<uint32_t>(bfloat16) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

void FromFloat(float value, float* out) { *out = value; }
void FromFloat(float value, uint16_t* out) {
  if (std::isnan(value)) {
    *out = 0x7fc0;
    return;
  }
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest, ties to even
  *out = static_cast<uint16_t>(bits >> 16);
}

// y += weight * x over n values, a loop the compiler vectorises, on x86-64 for each of these instruction sets,
// the processor's chosen when the library loads.
#if defined(__x86_64__)
#define LANDMARKS_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LANDMARKS_VECTOR_CLONES
#endif

template <typename T>
LANDMARKS_VECTOR_CLONES void Accumulate(float weight, const T* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += weight * ToFloat(x[i]);
}

template <typename T>
ffi::Error Resize(const T* x, T* y, int64_t images, int64_t height, int64_t width, int64_t channels,
                  const Taps& rows, const Taps& cols) {
  const int64_t out_height = rows.outputs(), out_width = cols.outputs();
  const int64_t row_size = width * channels;
  std::vector<float> blended_row(row_size), out_row(out_width * channels);
  for (int64_t image = 0; image < images; ++image) {
    const T* source = x + image * height * row_size;
    T* target = y + image * out_height * out_width * channels;
    for (int64_t o = 0; o < out_height; ++o) {
      std::fill(blended_row.begin(), blended_row.end(), 0.0f);
      for (int64_t k = rows.offsets[o]; k < rows.offsets[o + 1]; ++k) {
        Accumulate(rows.weights[k], source + rows.indices[k] * row_size, blended_row.data(), row_size);
      }
      std::fill(out_row.begin(), out_row.end(), 0.0f);
      for (int64_t p = 0; p < out_width; ++p) {
        for (int64_t k = cols.offsets[p]; k < cols.offsets[p + 1]; ++k) {
          Accumulate(cols.weights[k], blended_row.data() + cols.indices[k] * channels,
                     out_row.data() + p * channels, channels);
        }
      }
      T* out = target + o * out_width * channels;
      for (int64_t i = 0; i < out_width * channels; ++i) FromFloat(out_row[i], out + i);
    }
  }
  return ffi::Error::Success();
}

ffi::Error InvalidArgument(const std::string& message) {
  return ffi::Error::InvalidArgument("sparse resize: " + message);
}

// A matrix is consistent when its offsets rise from 0 to the number of taps and every index is inside the axis.
bool Consistent(const Taps& taps, int64_t inputs) {
  if (taps.offsets.size() < 1 || taps.offsets[0] != 0 || taps.indices.size() != taps.weights.size() ||
      taps.offsets[taps.offsets.size() - 1] != static_cast<int64_t>(taps.indices.size())) {
    return false;
  }
  for (size_t o = 1; o < taps.offsets.size(); ++o) {
    if (taps.offsets[o] < taps.offsets[o - 1]) return false;
  }
  for (int64_t index : taps.indices) {
    if (index < 0 || index >= inputs) return false;
  }
  return true;
}

// x: (..., H, W, C), every leading dimension a batch one; y: (..., rows, cols, C).
ffi::Error SparseResize(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, ffi::Span<const int64_t> row_offsets,
                        ffi::Span<const int64_t> row_indices, ffi::Span<const float> row_weights,
                        ffi::Span<const int64_t> col_offsets, ffi::Span<const int64_t> col_indices,
                        ffi::Span<const float> col_weights) {
  const auto in = x.dimensions(), out = y->dimensions();
  if (in.size() < 3 || in.size() != out.size()) return InvalidArgument("expected (..., H, W, C) arrays");
  const size_t rank = in.size();
  int64_t images = 1;
  for (size_t i = 0; i + 3 < rank; ++i) {
    if (in[i] != out[i]) return InvalidArgument("the batch dimensions of input and output differ");
    images *= in[i];
  }
  const Taps rows{row_offsets, row_indices, row_weights}, cols{col_offsets, col_indices, col_weights};
  const int64_t height = in[rank - 3], width = in[rank - 2], channels = in[rank - 1];
  if (out[rank - 1] != channels || rows.outputs() != out[rank - 3] || cols.outputs() != out[rank - 2] ||
      !Consistent(rows, height) || !Consistent(cols, width)) {
    return InvalidArgument("the matrices do not match the input and output shapes");
  }
  if (x.element_type() != y->element_type()) return InvalidArgument("input and output dtypes differ");
  switch (x.element_type()) {
    case ffi::DataType::F32:
      return Resize(static_cast<const float*>(x.untyped_data()), static_cast<float*>(y->untyped_data()), images,
                    height, width, channels, rows, cols);
    case ffi::DataType::BF16:
      return Resize(static_cast<const uint16_t*>(x.untyped_data()), static_cast<uint16_t*>(y->untyped_data()),
                    images, height, width, channels, rows, cols);
    default:
      return InvalidArgument("only float32 and bfloat16 are supported");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(LandmarksSparseResize, SparseResize,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("row_offsets")
                                  .Attr<ffi::Span<const int64_t>>("row_indices")
                                  .Attr<ffi::Span<const float>>("row_weights")
                                  .Attr<ffi::Span<const int64_t>>("col_offsets")
                                  .Attr<ffi::Span<const int64_t>>("col_indices")
                                  .Attr<ffi::Span<const float>>("col_weights"));
