// oneDNN's convolutions as XLA:CPU custom calls (XLA's FFI): forward, input gradient and kernel gradient of a
// 2D convolution on NHWC images with an HWIO kernel, float32 or bfloat16, symmetric padding, equal strides.
// oneDNN runs these faster than XLA:CPU (its kernel gradients most of all), and uses AMX for bfloat16 where the
// processor has it (docs/benchmarks.md).
//
// Each call splits its batch into parts that oneDNN convolves single-threaded, on the calling thread and on
// whichever threads of XLA's intra-op pool are free. oneDNN's own OpenMP threads would contend for the cores
// with XLA's work beside the call; in parts, the convolutions and XLA's work share XLA's threads instead, and two
// convolutions can run at once.
//
// Where the Python side allows it (the "winograd" attribute), float32 3x3 convolutions at stride 1 with padding 1
// run by Winograd's F(4x4, 3x3) instead (winograd.h), in the same parts.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "winograd.h"
#include "xla/ffi/api/ffi.h"

// OpenMP, which oneDNN runs on: each thread that convolves asks it for one thread.
extern "C" void omp_set_num_threads(int);

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;

// The shapes of one convolution, in oneDNN's logical order.
struct Shapes {
  memory::dims image;     // N, C, H, W
  memory::dims kernel;    // F, C, kh, kw
  memory::dims output;    // N, F, Ho, Wo
  memory::dims strides;   // stride, stride
  memory::dims padding_l; // padding, padding
  memory::dims padding_r; // what makes the output size consistent with XLA's floor division
  memory::data_type type;
};

enum class Pass { kForward, kInputGradient, kKernelGradient };

// Channels in and out, and image rows and columns, below which a convolution stays direct when Winograd's
// algorithm is allowed: with fewer channels its products are short and oneDNN's AVX-512 sgemm runs them slowly;
// on smaller images its kernel transform (36 x C x F) outweighs the few tiles' savings. docs/benchmarks.md says
// how the thresholds were chosen.
constexpr int64_t kWinogradMinChannels = 64;
constexpr int64_t kWinogradMinSize = 16;

// One compiled primitive, the layouts it wants (the kernel reordered to and from HWIO around each call, the
// images and outputs reordered from NHWC by each part where they differ) and the scratch memory it needs (given
// per execution, so that parts can run at once).
struct Compiled {
  dnnl::primitive primitive;
  memory::desc kernel_layout;
  memory::desc image_layout;
  memory::desc output_layout;
  memory::desc scratchpad;
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

std::string Key(Pass pass, const Shapes& s) {
  std::string key = std::to_string(static_cast<int>(pass)) + ":" + std::to_string(static_cast<int>(s.type));
  for (const memory::dims* dims : {&s.image, &s.kernel, &s.output, &s.strides, &s.padding_l, &s.padding_r}) {
    for (auto d : *dims) key += "," + std::to_string(d);
    key += ";";
  }
  return key;
}

// Whether a kernel gradient reads its image and output gradient in oneDNN's blocked layouts rather than XLA's
// NHWC. Without AVX-512, oneDNN's 3x3 kernel gradients run faster from its blocked layouts, the reorders
// counted; with AVX-512 the two are about even, and 1x1 kernels are faster from NHWC on both
// (docs/benchmarks.md).
bool KernelGradientFromBlockedLayouts(const Shapes& s) {
  const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  const bool has_avx512 = (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & avx512) == avx512;
  return !has_avx512 && s.kernel[2] * s.kernel[3] > 1;
}

Compiled Compile(Pass pass, const Shapes& s) {
  const auto images = pass == Pass::kKernelGradient && KernelGradientFromBlockedLayouts(s)
                          ? memory::format_tag::any : memory::format_tag::nhwc;
  const memory::desc image(s.image, s.type, images);
  const memory::desc kernel(s.kernel, s.type, memory::format_tag::any);
  const memory::desc output(s.output, s.type, images);
  dnnl::primitive_attr attributes;
  attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // The gradients' primitives take the forward one as a hint.
  const dnnl::convolution_forward::primitive_desc forward(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, image, kernel, output,
      s.strides, s.padding_l, s.padding_r, attributes);
  switch (pass) {
    case Pass::kForward:
      return {dnnl::convolution_forward(forward), forward.weights_desc(), image, output, forward.scratchpad_desc()};
    case Pass::kInputGradient: {
      dnnl::convolution_backward_data::primitive_desc pd(Engine(), dnnl::algorithm::convolution_direct, image,
                                                         kernel, output, s.strides, s.padding_l, s.padding_r,
                                                         forward, attributes);
      return {dnnl::convolution_backward_data(pd), pd.weights_desc(), image, output, pd.scratchpad_desc()};
    }
    case Pass::kKernelGradient: {
      // In float32 whatever the images' type: the parts' kernel gradients are summed before rounding.
      const memory::desc summed(s.kernel, memory::data_type::f32, memory::format_tag::any);
      dnnl::convolution_backward_weights::primitive_desc pd(Engine(), dnnl::algorithm::convolution_direct,
                                                            image, summed, output, s.strides, s.padding_l,
                                                            s.padding_r, forward, attributes);
      return {dnnl::convolution_backward_weights(pd), pd.diff_weights_desc(), pd.src_desc(), pd.diff_dst_desc(),
              pd.scratchpad_desc()};
    }
  }
  throw std::logic_error("unknown pass");
}

// Primitives are built once per shape; XLA may run two custom calls at once, hence the lock.
const Compiled& Cached(Pass pass, const Shapes& s) {
  static std::mutex lock;
  static std::unordered_map<std::string, std::unique_ptr<Compiled>> cache;
  const std::string key = Key(pass, s);
  std::lock_guard<std::mutex> guard(lock);
  auto found = cache.find(key);
  if (found == cache.end()) {
    found = cache.emplace(key, std::make_unique<Compiled>(Compile(pass, s))).first;
  }
  return *found->second;
}

ffi::Error InvalidArgument(const std::string& message) {
  return ffi::Error::InvalidArgument("oneDNN convolution: " + message);
}

ffi::Unexpected<ffi::Error> Invalid(const std::string& message) { return ffi::Unexpected(InvalidArgument(message)); }

// One operand as XLA lays it out, split into the leading dimensions that vmap adds (XLA's FFI "expand_dims"
// batching, of size 1 where the operand is not batched) and its own four.
struct Operand {
  void* data;
  int64_t groups;      // product of the leading dimensions
  int64_t group_size;  // elements of one group
  ffi::Span<const int64_t> own;  // the last four dimensions
};

ffi::ErrorOr<Operand> Split(const ffi::AnyBuffer& buffer) {
  auto dims = buffer.dimensions();
  if (dims.size() < 4) return Invalid("expected NHWC images and an HWIO kernel, of rank 4");
  Operand operand{buffer.untyped_data(), 1, 1, ffi::Span<const int64_t>(dims.begin() + dims.size() - 4, 4)};
  for (size_t i = 0; i < dims.size(); ++i) (i + 4 < dims.size() ? operand.groups : operand.group_size) *= dims[i];
  return operand;
}

// image (N, H, W, C), kernel (kh, kw, C, F), output (N, Ho, Wo, F); `folded` images per batch (vmap's groups
// folded into the batch where the kernel is shared).
ffi::ErrorOr<Shapes> Describe(ffi::DataType type, const Operand& image, const Operand& kernel,
                              const Operand& output, int64_t folded, int64_t stride, int64_t padding) {
  Shapes s;
  if (type == ffi::DataType::F32) {
    s.type = memory::data_type::f32;
  } else if (type == ffi::DataType::BF16) {
    s.type = memory::data_type::bf16;
  } else {
    return Invalid("only float32 and bfloat16 are supported");
  }
  const auto &x = image.own, &k = kernel.own, &y = output.own;
  s.image = {folded * x[0], x[3], x[1], x[2]};
  s.kernel = {k[3], k[2], k[0], k[1]};
  s.output = {folded * y[0], y[3], y[1], y[2]};
  s.strides = {stride, stride};
  s.padding_l = {padding, padding};
  s.padding_r = {(y[1] - 1) * stride + k[0] - x[1] - padding, (y[2] - 1) * stride + k[1] - x[2] - padding};
  if (s.padding_r[0] < 0 || s.padding_r[1] < 0) return Invalid("the stride leaves input rows or columns unread");
  return s;
}

// The parts of one call, shared with the tasks it schedules on XLA's pool. A task may start after the call has
// returned: it holds this by shared_ptr and touches nothing else unless it claims a part.
struct Parts {
  std::function<void(int64_t)> run;
  int64_t count = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex lock;
  std::condition_variable finished;
  std::string error;

  // Claims and runs parts until none are left.
  void Work() {
    omp_set_num_threads(1);
    for (int64_t part; (part = next.fetch_add(1)) < count;) {
      try {
        run(part);
      } catch (const std::exception& e) {  // not to escape a pool thread
        std::lock_guard<std::mutex> guard(lock);
        error = e.what();
      }
      if (done.fetch_add(1) + 1 == count) {
        std::lock_guard<std::mutex> guard(lock);
        finished.notify_all();
      }
    }
  }
};

// Runs parts 0 to count - 1 of `run` on this thread and on the pool's free threads; the error, if any.
std::string RunInParts(ffi::ThreadPool& pool, int64_t count, std::function<void(int64_t)> run) {
  auto parts = std::make_shared<Parts>();
  parts->run = std::move(run);
  parts->count = count;
  for (int64_t helper = 1; helper < std::min(count, pool.num_threads()); ++helper) {
    pool.Schedule([parts] { parts->Work(); });
  }
  parts->Work();
  std::unique_lock<std::mutex> guard(parts->lock);
  parts->finished.wait(guard, [&] { return parts->done.load() == parts->count; });
  return parts->error;
}

// How many equal parts a batch is split into: up to two per thread (so that a thread that frees up late still
// takes some), one per thread for kernel gradients (each part sums into a kernel of its own).
int64_t PartCount(Pass pass, int64_t batch, int64_t threads) {
  const int64_t most = std::max<int64_t>(1, pass == Pass::kKernelGradient ? threads : 2 * threads);
  int64_t count = std::max<int64_t>(1, std::min(batch, most));
  while (batch % count != 0) --count;
  return count;
}

// `data` as it is where it already has `layout`, else a copy reordered into it (on `stream`).
memory InLayout(memory data, const memory::desc& layout, dnnl::stream& stream) {
  if (data.get_desc() == layout) return data;
  memory copy(layout, Engine());
  dnnl::reorder(data, copy).execute(stream, data, copy);
  return copy;
}

// Runs one pass on one group, in parts over the batch; `kernel_data` is the HWIO kernel (read, or written by the
// kernel gradient).
void RunOne(ffi::ThreadPool& pool, Pass pass, const Shapes& s, char* image_data, void* kernel_data,
            char* output_data, int64_t bytes) {
  omp_set_num_threads(1);  // before the primitive is built: oneDNN sizes its work to the threads it may use
  const int64_t count = PartCount(pass, s.image[0], pool.num_threads());
  Shapes part = s;
  part.image[0] = part.output[0] = s.image[0] / count;
  const Compiled& compiled = Cached(pass, part);
  const int64_t image_step = part.image[0] * part.image[1] * part.image[2] * part.image[3] * bytes;
  const int64_t output_step = part.output[0] * part.output[1] * part.output[2] * part.output[3] * bytes;
  dnnl::stream stream(Engine());
  memory kernel(memory::desc(s.kernel, s.type, memory::format_tag::hwio), Engine(), kernel_data);
  const bool reorder = compiled.kernel_layout != kernel.get_desc();
  // The forward pass and input gradient read one kernel; each part of the kernel gradient writes its own.
  std::vector<memory> kernels(pass == Pass::kKernelGradient ? count : 1);
  for (int64_t i = 0; i < static_cast<int64_t>(kernels.size()); ++i) {
    kernels[i] = reorder || i > 0 ? memory(compiled.kernel_layout, Engine()) : kernel;
  }
  if (reorder && pass != Pass::kKernelGradient) {
    dnnl::reorder(kernel, kernels[0]).execute(stream, kernel, kernels[0]);
  }
  stream.wait();
  const std::string error = RunInParts(pool, count, [&](int64_t i) {
    dnnl::stream own(Engine());
    memory image(memory::desc(part.image, s.type, memory::format_tag::nhwc), Engine(),
                 image_data + i * image_step);
    memory output(memory::desc(part.output, s.type, memory::format_tag::nhwc), Engine(),
                  output_data + i * output_step);
    memory scratch(compiled.scratchpad, Engine());
    switch (pass) {
      case Pass::kForward:
        compiled.primitive.execute(own, {{DNNL_ARG_SRC, image}, {DNNL_ARG_WEIGHTS, kernels[0]},
                                         {DNNL_ARG_DST, output}, {DNNL_ARG_SCRATCHPAD, scratch}});
        break;
      case Pass::kInputGradient:
        compiled.primitive.execute(own, {{DNNL_ARG_DIFF_SRC, image}, {DNNL_ARG_WEIGHTS, kernels[0]},
                                         {DNNL_ARG_DIFF_DST, output}, {DNNL_ARG_SCRATCHPAD, scratch}});
        break;
      case Pass::kKernelGradient: {
        // Named, so that reordered copies live until the stream has finished with them.
        memory image_in = InLayout(image, compiled.image_layout, own);
        memory output_in = InLayout(output, compiled.output_layout, own);
        compiled.primitive.execute(own, {{DNNL_ARG_SRC, image_in}, {DNNL_ARG_DIFF_WEIGHTS, kernels[i]},
                                         {DNNL_ARG_DIFF_DST, output_in}, {DNNL_ARG_SCRATCHPAD, scratch}});
        own.wait();
        break;
      }
    }
    own.wait();
  });
  if (!error.empty()) throw std::runtime_error(error);
  if (pass != Pass::kKernelGradient) return;
  // The parts' kernel gradients, in float32 and one layout: summed element by element into the first.
  float* total = static_cast<float*>(kernels[0].get_data_handle());
  const size_t size = compiled.kernel_layout.get_size() / sizeof(float);
  for (int64_t i = 1; i < count; ++i) {
    const float* other = static_cast<const float*>(kernels[i].get_data_handle());
    for (size_t j = 0; j < size; ++j) total[j] += other[j];
  }
  if (reorder) dnnl::reorder(kernels[0], kernel).execute(stream, kernels[0], kernel);
  stream.wait();
}

// Whether Winograd's F(4x4, 3x3) takes the pass (winograd.h): float32, a 3x3 kernel at stride 1 with padding 1,
// the sizes above, and a processor with AVX2 and FMA.
bool WinogradTakes(const Shapes& s) {
  return s.type == memory::data_type::f32 && s.kernel[2] == 3 && s.kernel[3] == 3 && s.strides[0] == 1 &&
         s.strides[1] == 1 && s.padding_l[0] == 1 && s.padding_l[1] == 1 && s.padding_r[0] == 1 &&
         s.padding_r[1] == 1 && s.image[1] >= kWinogradMinChannels && s.output[1] >= kWinogradMinChannels &&
         s.image[2] >= kWinogradMinSize && s.image[3] >= kWinogradMinSize &&
         landmarks_winograd::Available();
}

// One pass by Winograd's algorithm, in parts over the batch as RunOne's: the forward pass and input gradient
// share one transformed kernel; each part of the kernel gradient sums into Winograd-domain sums of its own.
void RunWinograd(ffi::ThreadPool& pool, Pass pass, const Shapes& s, float* image, float* kernel, float* output) {
  namespace w = landmarks_winograd;
  const int64_t batch = s.image[0], channels = s.image[1], height = s.image[2], width = s.image[3];
  const int64_t features = s.output[1], plane = channels * features;
  const int64_t count = PartCount(pass, batch, pool.num_threads()), images = batch / count;
  const int64_t image_step = images * height * width * channels, output_step = images * height * width * features;
  std::string error;
  if (pass == Pass::kKernelGradient) {
    std::vector<float> sums(count * w::kPoints * plane, 0.f);
    error = RunInParts(pool, count, [&](int64_t i) {
      w::AddKernelGradient(image + i * image_step, output + i * output_step, images, height, width, channels,
                           features, sums.data() + i * w::kPoints * plane);
    });
    if (!error.empty()) throw std::runtime_error(error);
    for (int64_t i = 1; i < count; ++i) {
      const float* other = sums.data() + i * w::kPoints * plane;
      for (int64_t j = 0; j < w::kPoints * plane; ++j) sums[j] += other[j];
    }
    w::KernelGradientFromSums(sums.data(), channels, features, kernel);
    return;
  }
  std::vector<float> transformed(w::kPoints * plane);
  w::TransformKernel(kernel, channels, features, pass == Pass::kInputGradient, transformed.data());
  error = RunInParts(pool, count, [&](int64_t i) {
    if (pass == Pass::kForward) {
      w::Convolve(image + i * image_step, transformed.data(), images, height, width, channels, features,
                  output + i * output_step);
    } else {  // the input gradient: the output gradient convolved with the turned kernel
      w::Convolve(output + i * output_step, transformed.data(), images, height, width, features, channels,
                  image + i * image_step);
    }
  });
  if (!error.empty()) throw std::runtime_error(error);
}

// Runs one pass over vmap's groups: one call where the kernel is shared (the groups fold into the batch), else
// one call per group, an operand of one group serving all.
ffi::Error Run(ffi::ThreadPool pool, Pass pass, ffi::DataType type, const ffi::AnyBuffer& image_buffer,
               const ffi::AnyBuffer& kernel_buffer, const ffi::AnyBuffer& output_buffer, int64_t stride,
               int64_t padding, bool winograd) {
  auto image = Split(image_buffer), kernel = Split(kernel_buffer), output = Split(output_buffer);
  if (image.has_error()) return image.error();
  if (kernel.has_error()) return kernel.error();
  if (output.has_error()) return output.error();
  const int64_t groups = std::max({image->groups, kernel->groups, output->groups});
  for (const Operand* operand : {&*image, &*kernel, &*output}) {
    if (operand->groups != 1 && operand->groups != groups) return InvalidArgument("operands batched differently");
  }
  const bool fold = kernel->groups == 1 && image->groups == output->groups;
  auto shapes = Describe(type, *image, *kernel, *output, fold ? groups : 1, stride, padding);
  if (shapes.has_error()) return shapes.error();
  const int64_t bytes = type == ffi::DataType::F32 ? 4 : 2;
  auto at = [bytes](const Operand& operand, int64_t group) {
    return static_cast<char*>(operand.data) + (operand.groups == 1 ? 0 : group * operand.group_size * bytes);
  };
  try {
    for (int64_t group = 0; group < (fold ? 1 : groups); ++group) {
      if (winograd && WinogradTakes(shapes.value())) {
        RunWinograd(pool, pass, shapes.value(), reinterpret_cast<float*>(at(*image, group)),
                    reinterpret_cast<float*>(at(*kernel, group)), reinterpret_cast<float*>(at(*output, group)));
      } else {
        RunOne(pool, pass, shapes.value(), at(*image, group), at(*kernel, group), at(*output, group), bytes);
      }
    }
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("oneDNN convolution: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer kernel, ffi::Result<ffi::AnyBuffer> y,
                   int64_t stride, int64_t padding, bool winograd) {
  return Run(pool, Pass::kForward, x.element_type(), x, kernel, *y, stride, padding, winograd);
}

ffi::Error InputGradient(ffi::ThreadPool pool, ffi::AnyBuffer grad_y, ffi::AnyBuffer kernel,
                         ffi::Result<ffi::AnyBuffer> grad_x, int64_t stride, int64_t padding, bool winograd) {
  return Run(pool, Pass::kInputGradient, grad_y.element_type(), *grad_x, kernel, grad_y, stride, padding,
             winograd);
}

ffi::Error KernelGradient(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer grad_y,
                          ffi::Result<ffi::AnyBuffer> grad_kernel, int64_t stride, int64_t padding,
                          bool winograd) {
  return Run(pool, Pass::kKernelGradient, x.element_type(), x, *grad_kernel, grad_y, stride, padding, winograd);
}

}  // namespace

#define LANDMARKS_CONVOLUTION_BINDING \
  ffi::Ffi::Bind()                    \
      .Ctx<ffi::ThreadPool>()         \
      .Arg<ffi::AnyBuffer>()          \
      .Arg<ffi::AnyBuffer>()          \
      .Ret<ffi::AnyBuffer>()          \
      .Attr<int64_t>("stride")        \
      .Attr<int64_t>("padding")        \
      .Attr<bool>("winograd")

XLA_FFI_DEFINE_HANDLER_SYMBOL(LandmarksOnednnConvForward, Forward, LANDMARKS_CONVOLUTION_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(LandmarksOnednnConvInputGradient, InputGradient, LANDMARKS_CONVOLUTION_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(LandmarksOnednnConvKernelGradient, KernelGradient, LANDMARKS_CONVOLUTION_BINDING);
