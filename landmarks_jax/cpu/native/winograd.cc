// Winograd's F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), with the
// interpolation points 0, 1, -1, 2, -2 and infinity. See winograd.h.

#include "winograd.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "oneapi/dnnl/dnnl.h"

namespace landmarks_winograd {

bool Available() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

}  // namespace landmarks_winograd

// The transforms below are element-wise work along the channels; AVX2 code for them (called only where
// Available() says so).
#pragma GCC target("avx2,fma")

namespace landmarks_winograd {
namespace {

constexpr int kTile = 6;    // input tile
constexpr int kOutput = 4;  // output tile
constexpr int kTaps = 3;    // kernel

// Input transform: V = BT d B.
constexpr float kBT[kTile][kTile] = {
    {4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
// Kernel transform: U = G g GT.
constexpr float kG[kTile][kTaps] = {
    {1.f / 4, 0, 0},         {-1.f / 6, -1.f / 6, -1.f / 6}, {-1.f / 6, 1.f / 6, -1.f / 6},
    {1.f / 24, 1.f / 12, 1.f / 6}, {1.f / 24, -1.f / 12, 1.f / 6}, {0, 0, 1}};
// Output transform: y = AT m A.
constexpr float kAT[kOutput][kTile] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

// Tiles per block: the block's transformed tiles (36 x tiles x channels) stay near the core between the
// transforms and the products.
constexpr int64_t kBlock = 64;

// out[0:n] += w * in[0:n]
inline void AddScaled(float w, const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += w * in[i];
}

// The tile grid over the images.
struct Grid {
  int64_t height, width, rows, columns;
  Grid(int64_t h, int64_t w) : height(h), width(w), rows((h + kOutput - 1) / kOutput),
                               columns((w + kOutput - 1) / kOutput) {}
  int64_t PerImage() const { return rows * columns; }
  // Image, and the tile's first output row and column.
  void Locate(int64_t tile, int64_t* image, int64_t* row, int64_t* column) const {
    *image = tile / PerImage();
    const int64_t within = tile % PerImage();
    *row = within / columns * kOutput;
    *column = within % columns * kOutput;
  }
};

// V[k][t][c] (k = 6 i + j over the tile's points) for `count` tiles from `first`. `scratch`: 2 x 36 x C floats.
void TransformInputs(const float* x, const Grid& grid, int64_t channels, int64_t first, int64_t count, float* v,
                     float* scratch) {
  float* d = scratch;                             // the 6x6 input tile, zero outside the image
  float* rows = scratch + kPoints * channels;     // BT d
  for (int64_t t = 0; t < count; ++t) {
    int64_t image, row, column;
    grid.Locate(first + t, &image, &row, &column);
    for (int a = 0; a < kTile; ++a) {
      const int64_t y = row - 1 + a;
      for (int b = 0; b < kTile; ++b) {
        const int64_t x_at = column - 1 + b;
        float* to = d + (a * kTile + b) * channels;
        if (y < 0 || y >= grid.height || x_at < 0 || x_at >= grid.width) {
          std::memset(to, 0, channels * sizeof(float));
        } else {
          std::memcpy(to, x + ((image * grid.height + y) * grid.width + x_at) * channels, channels * sizeof(float));
        }
      }
    }
    std::memset(rows, 0, kPoints * channels * sizeof(float));
    for (int i = 0; i < kTile; ++i)
      for (int a = 0; a < kTile; ++a)
        if (kBT[i][a] != 0)
          for (int b = 0; b < kTile; ++b) AddScaled(kBT[i][a], d + (a * kTile + b) * channels,
                                                    rows + (i * kTile + b) * channels, channels);
    for (int i = 0; i < kTile; ++i)
      for (int j = 0; j < kTile; ++j) {
        float* to = v + ((i * kTile + j) * count + t) * channels;
        std::memset(to, 0, channels * sizeof(float));
        for (int b = 0; b < kTile; ++b)
          if (kBT[j][b] != 0) AddScaled(kBT[j][b], rows + (i * kTile + b) * channels, to, channels);
      }
  }
}

// y's 4x4 tiles from m[k][t][f]. `scratch`: 4 x 6 x F floats.
void TransformOutputs(const float* m, const Grid& grid, int64_t features, int64_t first, int64_t count, float* y,
                      float* scratch) {
  for (int64_t t = 0; t < count; ++t) {
    int64_t image, row, column;
    grid.Locate(first + t, &image, &row, &column);
    std::memset(scratch, 0, kOutput * kTile * features * sizeof(float));
    for (int p = 0; p < kOutput; ++p)
      for (int i = 0; i < kTile; ++i)
        if (kAT[p][i] != 0)
          for (int j = 0; j < kTile; ++j)
            AddScaled(kAT[p][i], m + ((i * kTile + j) * count + t) * features,
                      scratch + (p * kTile + j) * features, features);
    for (int p = 0; p < kOutput && row + p < grid.height; ++p)
      for (int q = 0; q < kOutput && column + q < grid.width; ++q) {
        float* to = y + ((image * grid.height + row + p) * grid.width + column + q) * features;
        std::memset(to, 0, features * sizeof(float));
        for (int j = 0; j < kTile; ++j)
          if (kAT[q][j] != 0) AddScaled(kAT[q][j], scratch + (p * kTile + j) * features, to, features);
      }
  }
}

// g[k][t][f] = (A dy AT) of each tile's 4x4 output gradient (zero outside the image), the output transform's
// transpose. `scratch`: 4 x 6 x F floats.
void TransformOutputGradients(const float* dy, const Grid& grid, int64_t features, int64_t first, int64_t count,
                              float* g, float* scratch) {
  for (int64_t t = 0; t < count; ++t) {
    int64_t image, row, column;
    grid.Locate(first + t, &image, &row, &column);
    std::memset(scratch, 0, kOutput * kTile * features * sizeof(float));
    for (int p = 0; p < kOutput && row + p < grid.height; ++p)
      for (int q = 0; q < kOutput && column + q < grid.width; ++q) {
        const float* from = dy + ((image * grid.height + row + p) * grid.width + column + q) * features;
        for (int j = 0; j < kTile; ++j)
          if (kAT[q][j] != 0) AddScaled(kAT[q][j], from, scratch + (p * kTile + j) * features, features);
      }
    for (int i = 0; i < kTile; ++i)
      for (int j = 0; j < kTile; ++j) {
        float* to = g + ((i * kTile + j) * count + t) * features;
        std::memset(to, 0, features * sizeof(float));
        for (int p = 0; p < kOutput; ++p)
          if (kAT[p][i] != 0) AddScaled(kAT[p][i], scratch + (p * kTile + j) * features, to, features);
      }
  }
}

// Row-major products of oneDNN's sgemm: c (m x n) = op(a) b + beta c.
void Product(bool transpose_a, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
             float* c) {
  const dnnl_status_t status = dnnl_sgemm(transpose_a ? 'T' : 'N', 'N', m, n, k, 1.f, a, transpose_a ? m : k, b,
                                          n, beta, c, n);
  if (status != dnnl_success) throw std::runtime_error("oneDNN's sgemm failed");
}

thread_local std::vector<float> tiles, products, scratch;

void Reserve(int64_t channels, int64_t features) {
  const size_t widest = static_cast<size_t>(std::max(channels, features));
  tiles.resize(kPoints * kBlock * channels);
  products.resize(kPoints * kBlock * features);
  scratch.resize(2 * kPoints * widest);
}


// Calls `block(grid, first, count)` for each block of tiles over the batch's images, the buffers reserved.
template <typename Block>
void ForEachBlock(int64_t batch, int64_t height, int64_t width, int64_t channels, int64_t features, Block block) {
  const Grid grid(height, width);
  Reserve(channels, features);
  const int64_t total = batch * grid.PerImage();
  for (int64_t first = 0; first < total; first += kBlock) block(grid, first, std::min(kBlock, total - first));
}

// out[i][j] = sum over a, b of m(i, a) m(j, b) in[a][b] (M in MT), i, j < `outer`, a, b < `inner`, each entry a
// plane of `plane` floats: the kernel transform (m = G) and its transpose (m = GT).
template <typename Matrix>
void Sandwich(Matrix m, int outer, int inner, const float* in, float* out, int64_t plane) {
  std::vector<float> rows(outer * inner * plane, 0.f);  // M in
  for (int i = 0; i < outer; ++i)
    for (int a = 0; a < inner; ++a)
      if (m(i, a) != 0)
        for (int b = 0; b < inner; ++b)
          AddScaled(m(i, a), in + (a * inner + b) * plane, rows.data() + (i * inner + b) * plane, plane);
  std::fill(out, out + outer * outer * plane, 0.f);
  for (int i = 0; i < outer; ++i)
    for (int j = 0; j < outer; ++j)
      for (int b = 0; b < inner; ++b)
        if (m(j, b) != 0)
          AddScaled(m(j, b), rows.data() + (i * inner + b) * plane, out + (i * outer + j) * plane, plane);
}

}  // namespace

void TransformKernel(const float* hwio, int64_t channels, int64_t features, bool transposed, float* transformed) {
  // The input gradient's kernel, (3, 3, F, C): the kernel's taps in reverse, input and output channels swapped.
  std::vector<float> turned;
  if (transposed) {
    turned.resize(kTaps * kTaps * channels * features);
    for (int a = 0; a < kTaps; ++a)
      for (int b = 0; b < kTaps; ++b)
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t f = 0; f < features; ++f)
            turned[((a * kTaps + b) * features + f) * channels + c] =
                hwio[(((kTaps - 1 - a) * kTaps + kTaps - 1 - b) * channels + c) * features + f];
    hwio = turned.data();
    std::swap(channels, features);
  }
  Sandwich([](int i, int a) { return kG[i][a]; }, kTile, kTaps, hwio, transformed, channels * features);
}

void Convolve(const float* x, const float* transformed, int64_t batch, int64_t height, int64_t width,
              int64_t channels, int64_t features, float* y) {
  ForEachBlock(batch, height, width, channels, features, [&](const Grid& grid, int64_t first, int64_t count) {
    TransformInputs(x, grid, channels, first, count, tiles.data(), scratch.data());
    for (int64_t k = 0; k < kPoints; ++k) {
      Product(false, count, features, channels, tiles.data() + k * count * channels,
              transformed + k * channels * features, 0.f, products.data() + k * count * features);
    }
    TransformOutputs(products.data(), grid, features, first, count, y, scratch.data());
  });
}

void AddKernelGradient(const float* x, const float* dy, int64_t batch, int64_t height, int64_t width,
                       int64_t channels, int64_t features, float* sums) {
  ForEachBlock(batch, height, width, channels, features, [&](const Grid& grid, int64_t first, int64_t count) {
    TransformInputs(x, grid, channels, first, count, tiles.data(), scratch.data());
    TransformOutputGradients(dy, grid, features, first, count, products.data(), scratch.data());
    for (int64_t k = 0; k < kPoints; ++k) {
      Product(true, channels, features, count, tiles.data() + k * count * channels,
              products.data() + k * count * features, 1.f, sums + k * channels * features);
    }
  });
}

void KernelGradientFromSums(const float* sums, int64_t channels, int64_t features, float* hwio) {
  // GT s G, the kernel transform's transpose.
  Sandwich([](int a, int i) { return kG[i][a]; }, kTaps, kTile, sums, hwio, channels * features);
}

}  // namespace landmarks_winograd
