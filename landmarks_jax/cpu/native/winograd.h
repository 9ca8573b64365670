// Winograd's F(4x4, 3x3) convolution on one thread: NHWC float32 images, an HWIO 3x3 kernel, stride 1, padding
// 1. Each 6x6 input tile and the kernel go to the Winograd domain, where a 4x4 output tile costs 36 products a
// channel pair instead of 144; the 36 products of a block of tiles are matrix products (oneDNN's sgemm). Its
// rounding differs from a direct convolution's by about 1e-5 of the output's scale.

#ifndef LANDMARKS_JAX_NATIVE_WINOGRAD_H_
#define LANDMARKS_JAX_NATIVE_WINOGRAD_H_

#include <cstdint>

namespace landmarks_winograd {

// Points of the Winograd domain: a 6x6 tile, 36 of them.
constexpr int64_t kPoints = 36;

// Whether this processor runs the transforms' vector code (AVX2 with FMA).
bool Available();

// The kernel in the Winograd domain, (36, C, F), from an HWIO kernel (3, 3, C, F). With `transposed`, the kernel
// of the input gradient instead: the same kernel turned by half a turn, its channels swapped, (36, F, C).
void TransformKernel(const float* hwio, int64_t channels, int64_t features, bool transposed, float* transformed);

// y (N, H, W, F) = x (N, H, W, C) convolved with a kernel that TransformKernel gave, (36, C, F).
void Convolve(const float* x, const float* transformed, int64_t batch, int64_t height, int64_t width,
              int64_t channels, int64_t features, float* y);

// The kernel gradient in the Winograd domain, (36, C, F), of x (N, H, W, C) and the output gradient dy
// (N, H, W, F), added to `sums`.
void AddKernelGradient(const float* x, const float* dy, int64_t batch, int64_t height, int64_t width,
                       int64_t channels, int64_t features, float* sums);

// An HWIO kernel gradient (3, 3, C, F) from sums that AddKernelGradient gave.
void KernelGradientFromSums(const float* sums, int64_t channels, int64_t features, float* hwio);

}  // namespace landmarks_winograd

#endif  // LANDMARKS_JAX_NATIVE_WINOGRAD_H_
