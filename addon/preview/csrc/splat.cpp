// The splat rasterizer library: ONE source, compiled for every target by `python -m facepolicy.preview.build`.
//   g++ / zig c++ -> libfpsplat_cpu.so, fpsplat_cpu.dll, libfpsplat_cpu.dylib (tiles rendered by a thread pool)
//   nvcc -x cu    -> libfpsplat_cuda.so  (tiles rendered by CUDA blocks, depth keys sorted with CUB)
// Both drivers call the same per-gaussian projection and per-pixel blend from splat_math.h, and both order a
// tile's gaussians by (depth, index), so they produce the same image. The C ABI is declared at the bottom; Python
// (addon/preview/raster.py) validates every argument before calling it.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "splat_math.h"

#define FPS_ABI_VERSION 1

#if defined(_WIN32)
#define FPS_EXPORT extern "C" __declspec(dllexport)
#else
#define FPS_EXPORT extern "C" __attribute__((visibility("default")))
#endif

static thread_local char g_error[512] = "";

static int fail(const char* msg) {
    std::snprintf(g_error, sizeof(g_error), "%s", msg);
    return -1;
}

// Every (gaussian, tile) overlap costs memory (4 bytes on the CPU, 24 on the GPU); refuse absurd scenes cleanly.
#define FPS_MAX_ENTRIES (1LL << 27)

static int fail_too_many(long long total) {
    std::snprintf(g_error, sizeof(g_error),
                  "the gaussians overlap %lld image tiles in all, more than the limit of %lld; "
                  "they are too large for this image size",
                  total, (long long)FPS_MAX_ENTRIES);
    return -1;
}

// A portable parallel for (std::thread): every toolchain the library is built with has it, while OpenMP has no
// runtime in zig's clang for Windows and macOS. Work is handed out in chunks from an atomic counter (dynamic
// scheduling). Threads are started per call and joined before it returns, so none outlives a call: nothing is left
// running when Blender unloads the library. Each index is computed by exactly one thread, in one way, so the thread
// count never changes a result.
static int thread_count(int requested) {
    if (requested > 0) return requested;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw > 0 ? (int)hw : 1;
}

template <typename Fn>
static void parallel_for(int n, int n_threads, int chunk, const Fn& fn) {
    const int workers = std::min(n_threads, (n + chunk - 1) / chunk);
    std::atomic<int> next{0};
    auto work = [&]() {
        for (;;) {
            const int begin = next.fetch_add(chunk);
            if (begin >= n) return;
            const int end = std::min(n, begin + chunk);
            for (int i = begin; i < end; ++i) fn(i);
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < workers; ++t) {
        try {
            pool.emplace_back(work);
        } catch (const std::system_error&) {
            break;  // the system refused another thread: the ones running (and this one) do all the work
        }
    }
    work();
    for (auto& th : pool) th.join();
}

struct FpsScene {
    int n;
    const float* means;      // (n, 3)
    const float* scales;     // (n, 3)
    const float* rotations;  // (n, 4) w x y z
    const float* opacities;  // (n,)
    const float* sh;         // (n, K, 3)
    int degree;
};

#ifdef __CUDACC__
// ---------------------------------------------------------------------------------------------------------------
// CUDA driver
// ---------------------------------------------------------------------------------------------------------------
#include <cub/cub.cuh>
#include <cuda_runtime.h>

#define FPS_BACKEND 1

struct DeviceBuffer {
    void* ptr = nullptr;
    size_t cap = 0;
    cudaError_t ensure(size_t bytes) {
        if (bytes <= cap) return cudaSuccess;
        if (ptr) cudaFree(ptr);
        ptr = nullptr;
        cap = 0;
        size_t want = bytes + bytes / 4 + 256;
        cudaError_t err = cudaMalloc(&ptr, want);
        if (err == cudaSuccess) cap = want;
        return err;
    }
    template <typename T> T* as() { return static_cast<T*>(ptr); }
};

// Buffers grow and are reused across frames; calls are serialised.
static std::mutex g_cuda_mutex;
static DeviceBuffer b_means, b_scales, b_rots, b_opac, b_sh, b_proj, b_touched, b_offsets, b_keys, b_keys_sorted,
    b_vals, b_vals_sorted, b_ranges, b_temp, b_rgb, b_alpha;

__global__ void k_preprocess(FpsCamera cam, FpsScene s, FpsProjected* proj, uint64_t* touched) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= s.n) return;
    FpsProjected p;
    int K = fps_sh_coeffs(s.degree);
    bool ok = fps_project(cam, s.means + 3 * i, s.scales + 3 * i, s.rotations + 4 * i, s.opacities[i],
                          s.sh + (size_t)i * K * 3, s.degree, &p);
    touched[i] = ok ? (uint64_t)(p.rect[2] - p.rect[0]) * (uint64_t)(p.rect[3] - p.rect[1]) : 0ull;
    if (ok) proj[i] = p;
}

__global__ void k_duplicate(int n, int tiles_x, const FpsProjected* proj, const uint64_t* touched,
                            const uint64_t* inclusive, uint64_t* keys, uint32_t* vals) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || touched[i] == 0) return;
    uint64_t off = inclusive[i] - touched[i];
    const FpsProjected& p = proj[i];
    // depth > near > 0, so the float's bits sort like the float.
    uint64_t depth_bits = (uint64_t)__float_as_uint(p.depth);
    for (int y = p.rect[1]; y < p.rect[3]; ++y)
        for (int x = p.rect[0]; x < p.rect[2]; ++x) {
            keys[off] = ((uint64_t)(y * tiles_x + x) << 32) | depth_bits;
            vals[off] = (uint32_t)i;
            ++off;
        }
}

__global__ void k_ranges(uint32_t total, const uint64_t* keys, uint2* ranges) {
    uint32_t idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    uint32_t tile = (uint32_t)(keys[idx] >> 32);
    if (idx == 0) {
        ranges[tile].x = 0;
    } else {
        uint32_t prev = (uint32_t)(keys[idx - 1] >> 32);
        if (prev != tile) {
            ranges[prev].y = idx;
            ranges[tile].x = idx;
        }
    }
    if (idx == total - 1) ranges[tile].y = total;
}

__global__ void __launch_bounds__(FPS_TILE_PIXELS)
    k_render(FpsCamera cam, const uint2* ranges, const uint32_t* vals, const FpsProjected* proj, float bg0, float bg1,
             float bg2, float* out_rgb, float* out_alpha) {
    __shared__ FpsProjected batch[FPS_TILE_PIXELS];
    int rank = threadIdx.y * FPS_TILE + threadIdx.x;
    int px = blockIdx.x * FPS_TILE + threadIdx.x;
    int py = blockIdx.y * FPS_TILE + threadIdx.y;
    bool inside = px < cam.width && py < cam.height;
    bool done = !inside;
    uint2 range = ranges[blockIdx.y * cam.tiles_x + blockIdx.x];
    int todo = (int)(range.y - range.x);
    int rounds = (todo + FPS_TILE_PIXELS - 1) / FPS_TILE_PIXELS;
    float T = 1.0f;
    float C[3] = {0.0f, 0.0f, 0.0f};
    float fx = px + 0.5f, fy = py + 0.5f;
    for (int r = 0; r < rounds; ++r, todo -= FPS_TILE_PIXELS) {
        if (__syncthreads_count(done) == FPS_TILE_PIXELS) break;
        int progress = (int)range.x + r * FPS_TILE_PIXELS + rank;
        if (progress < (int)range.y) batch[rank] = proj[vals[progress]];
        __syncthreads();
        int count = min(FPS_TILE_PIXELS, todo);
        for (int j = 0; !done && j < count; ++j)
            if (fps_blend(batch[j], fx, fy, &T, C)) done = true;
    }
    if (inside) {
        size_t p = (size_t)py * cam.width + px;
        out_rgb[3 * p + 0] = C[0] + T * bg0;
        out_rgb[3 * p + 1] = C[1] + T * bg1;
        out_rgb[3 * p + 2] = C[2] + T * bg2;
        if (out_alpha) out_alpha[p] = 1.0f - T;
    }
}

#define CUDA_TRY(expr)                                                                                  \
    do {                                                                                                \
        cudaError_t e_ = (expr);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            std::snprintf(g_error, sizeof(g_error), "CUDA error in %s: %s", #expr, cudaGetErrorString(e_)); \
            return -1;                                                                                  \
        }                                                                                               \
    } while (0)

static int upload(DeviceBuffer& buf, const void* host, size_t bytes) {
    CUDA_TRY(buf.ensure(bytes));
    CUDA_TRY(cudaMemcpy(buf.ptr, host, bytes, cudaMemcpyHostToDevice));
    return 0;
}

static int bit_length(uint32_t v) {
    int b = 0;
    while (v) { ++b; v >>= 1; }
    return b;
}

static int render_scene(const FpsCamera& cam, const FpsScene& host, const float* bg, float* out_rgb,
                        float* out_alpha, int /*n_threads*/) {
    std::lock_guard<std::mutex> lock(g_cuda_mutex);
    const int n = host.n;
    const int K = fps_sh_coeffs(host.degree);
    const size_t n_pixels = (size_t)cam.width * cam.height;
    const uint32_t n_tiles = (uint32_t)cam.tiles_x * cam.tiles_y;

    CUDA_TRY(b_rgb.ensure(n_pixels * 3 * sizeof(float)));
    CUDA_TRY(b_alpha.ensure(n_pixels * sizeof(float)));
    CUDA_TRY(b_ranges.ensure(n_tiles * sizeof(uint2)));
    CUDA_TRY(cudaMemset(b_ranges.ptr, 0, n_tiles * sizeof(uint2)));

    uint32_t total = 0;
    if (n > 0) {
        if (upload(b_means, host.means, (size_t)n * 3 * sizeof(float))) return -1;
        if (upload(b_scales, host.scales, (size_t)n * 3 * sizeof(float))) return -1;
        if (upload(b_rots, host.rotations, (size_t)n * 4 * sizeof(float))) return -1;
        if (upload(b_opac, host.opacities, (size_t)n * sizeof(float))) return -1;
        if (upload(b_sh, host.sh, (size_t)n * K * 3 * sizeof(float))) return -1;
        CUDA_TRY(b_proj.ensure((size_t)n * sizeof(FpsProjected)));
        CUDA_TRY(b_touched.ensure((size_t)n * sizeof(uint64_t)));
        CUDA_TRY(b_offsets.ensure((size_t)n * sizeof(uint64_t)));

        FpsScene dev = host;
        dev.means = b_means.as<float>();
        dev.scales = b_scales.as<float>();
        dev.rotations = b_rots.as<float>();
        dev.opacities = b_opac.as<float>();
        dev.sh = b_sh.as<float>();
        const int threads = 256;
        const int blocks = (n + threads - 1) / threads;
        k_preprocess<<<blocks, threads>>>(cam, dev, b_proj.as<FpsProjected>(), b_touched.as<uint64_t>());
        CUDA_TRY(cudaGetLastError());

        size_t temp_bytes = 0;
        CUDA_TRY(cub::DeviceScan::InclusiveSum(nullptr, temp_bytes, b_touched.as<uint64_t>(),
                                               b_offsets.as<uint64_t>(), n));
        CUDA_TRY(b_temp.ensure(temp_bytes));
        CUDA_TRY(cub::DeviceScan::InclusiveSum(b_temp.ptr, temp_bytes, b_touched.as<uint64_t>(),
                                               b_offsets.as<uint64_t>(), n));
        uint64_t total64 = 0;
        CUDA_TRY(cudaMemcpy(&total64, b_offsets.as<uint64_t>() + (n - 1), sizeof(uint64_t), cudaMemcpyDeviceToHost));
        if (total64 > (uint64_t)FPS_MAX_ENTRIES) return fail_too_many((long long)total64);
        total = (uint32_t)total64;

        if (total > 0) {
            CUDA_TRY(b_keys.ensure(total * sizeof(uint64_t)));
            CUDA_TRY(b_keys_sorted.ensure(total * sizeof(uint64_t)));
            CUDA_TRY(b_vals.ensure(total * sizeof(uint32_t)));
            CUDA_TRY(b_vals_sorted.ensure(total * sizeof(uint32_t)));
            k_duplicate<<<blocks, threads>>>(n, cam.tiles_x, b_proj.as<FpsProjected>(), b_touched.as<uint64_t>(),
                                             b_offsets.as<uint64_t>(), b_keys.as<uint64_t>(), b_vals.as<uint32_t>());
            CUDA_TRY(cudaGetLastError());
            // Radix sort is stable and the duplicated entries are in gaussian order: ties keep index order.
            int end_bit = 32 + bit_length(n_tiles);
            temp_bytes = 0;
            CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, b_keys.as<uint64_t>(),
                                                     b_keys_sorted.as<uint64_t>(), b_vals.as<uint32_t>(),
                                                     b_vals_sorted.as<uint32_t>(), total, 0, end_bit));
            CUDA_TRY(b_temp.ensure(temp_bytes));
            CUDA_TRY(cub::DeviceRadixSort::SortPairs(b_temp.ptr, temp_bytes, b_keys.as<uint64_t>(),
                                                     b_keys_sorted.as<uint64_t>(), b_vals.as<uint32_t>(),
                                                     b_vals_sorted.as<uint32_t>(), total, 0, end_bit));
            k_ranges<<<(total + 255) / 256, 256>>>(total, b_keys_sorted.as<uint64_t>(), b_ranges.as<uint2>());
            CUDA_TRY(cudaGetLastError());
        }
    }
    dim3 grid(cam.tiles_x, cam.tiles_y), block(FPS_TILE, FPS_TILE);
    k_render<<<grid, block>>>(cam, b_ranges.as<uint2>(), total ? b_vals_sorted.as<uint32_t>() : nullptr,
                              b_proj.as<FpsProjected>(), bg[0], bg[1], bg[2], b_rgb.as<float>(),
                              out_alpha ? b_alpha.as<float>() : nullptr);
    CUDA_TRY(cudaGetLastError());
    CUDA_TRY(cudaMemcpy(out_rgb, b_rgb.ptr, n_pixels * 3 * sizeof(float), cudaMemcpyDeviceToHost));
    if (out_alpha) CUDA_TRY(cudaMemcpy(out_alpha, b_alpha.ptr, n_pixels * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

static int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    return count;
}

#else
// ---------------------------------------------------------------------------------------------------------------
// CPU driver
// ---------------------------------------------------------------------------------------------------------------

#define FPS_BACKEND 0

static void render_tile(const FpsCamera& cam, int tile, const int* entries, int begin, int end,
                        const FpsProjected* proj, const float* bg, float* out_rgb, float* out_alpha) {
    const int tx = tile % cam.tiles_x, ty = tile / cam.tiles_x;
    const int x0 = tx * FPS_TILE, y0 = ty * FPS_TILE;
    const int w = std::min(FPS_TILE, cam.width - x0), h = std::min(FPS_TILE, cam.height - y0);
    const int n_pix = w * h;
    float T[FPS_TILE_PIXELS], C[FPS_TILE_PIXELS * 3];
    for (int p = 0; p < n_pix; ++p) {
        T[p] = 1.0f;
        C[3 * p] = C[3 * p + 1] = C[3 * p + 2] = 0.0f;
    }
    // Bit px of live[py] is set while that pixel still takes colour: saturated pixels cost nothing afterwards,
    // which matters because most gaussians of a tile lie behind an already opaque surface.
    uint32_t live[FPS_TILE];
    for (int py = 0; py < FPS_TILE; ++py) live[py] = py < h ? (1u << w) - 1u : 0u;
    int n_done = 0;
    for (int e = begin; e < end && n_done < n_pix; ++e) {
        const FpsProjected& g = proj[entries[e]];
        // Only pixels whose centre lies in the gaussian's reach box can change (see fps_project).
        int lx = (int)fps_clampf(ceilf(g.mx - g.extent[0] - 0.5f) - x0, 0.0f, (float)w);
        int hx = (int)fps_clampf(floorf(g.mx + g.extent[0] - 0.5f) - x0 + 1.0f, 0.0f, (float)w);
        int ly = (int)fps_clampf(ceilf(g.my - g.extent[1] - 0.5f) - y0, 0.0f, (float)h);
        int hy = (int)fps_clampf(floorf(g.my + g.extent[1] - 0.5f) - y0 + 1.0f, 0.0f, (float)h);
        if (hx <= lx) continue;
        const uint32_t columns = ((1u << hx) - 1u) & ~((1u << lx) - 1u);
        for (int py = ly; py < hy; ++py) {
            uint32_t todo = live[py] & columns;
            const float fy = y0 + py + 0.5f;
            while (todo) {
                const int px = __builtin_ctz(todo);
                todo &= todo - 1u;
                const int p = py * w + px;
                if (fps_blend(g, x0 + px + 0.5f, fy, &T[p], &C[3 * p])) {
                    live[py] &= ~(1u << px);
                    ++n_done;
                }
            }
        }
    }
    for (int py = 0; py < h; ++py)
        for (int px = 0; px < w; ++px) {
            const int p = py * w + px;
            const size_t o = (size_t)(y0 + py) * cam.width + (x0 + px);
            out_rgb[3 * o + 0] = C[3 * p + 0] + T[p] * bg[0];
            out_rgb[3 * o + 1] = C[3 * p + 1] + T[p] * bg[1];
            out_rgb[3 * o + 2] = C[3 * p + 2] + T[p] * bg[2];
            if (out_alpha) out_alpha[o] = 1.0f - T[p];
        }
}

// Stable LSD radix sort of gaussian indices by depth (positive floats sort like their bit patterns), so equal
// depths keep index order, as the GPU's stable radix sort does.
static void sort_by_depth(std::vector<int>& order, const FpsProjected* proj) {
    const size_t m = order.size();
    std::vector<uint32_t> keys(m), keys_tmp(m);
    std::vector<int> vals_tmp(m);
    for (size_t i = 0; i < m; ++i) std::memcpy(&keys[i], &proj[order[i]].depth, sizeof(uint32_t));
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < m; ++i) ++count[((keys[i] >> shift) & 255u) + 1];
        if (std::find(count + 1, count + 257, m) != count + 257) continue;  // every key has this byte: no-op pass
        for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
        for (size_t i = 0; i < m; ++i) {
            size_t d = count[(keys[i] >> shift) & 255u]++;
            keys_tmp[d] = keys[i];
            vals_tmp[d] = order[i];
        }
        keys.swap(keys_tmp);
        order.swap(vals_tmp);
    }
}

static int render_scene(const FpsCamera& cam, const FpsScene& s, const float* bg, float* out_rgb, float* out_alpha,
                        int n_threads) {
    const int n = s.n;
    const int K = fps_sh_coeffs(s.degree);
    const int nt = thread_count(n_threads);
    std::vector<FpsProjected> proj((size_t)n);
    std::vector<unsigned char> visible((size_t)n);
    parallel_for(n, nt, 4096, [&](int i) {
        visible[i] = fps_project(cam, s.means + 3 * (size_t)i, s.scales + 3 * (size_t)i, s.rotations + 4 * (size_t)i,
                                 s.opacities[i], s.sh + (size_t)i * K * 3, s.degree, &proj[i]);
    });

    // Gaussians in (depth, index) order; filling the tile lists in this order leaves every list sorted.
    std::vector<int> order;
    order.reserve(n);
    for (int i = 0; i < n; ++i)
        if (visible[i]) order.push_back(i);
    sort_by_depth(order, proj.data());

    const int n_tiles = cam.tiles_x * cam.tiles_y;
    long long total = 0;
    for (int i : order) {
        const int* r = proj[i].rect;
        total += (long long)(r[2] - r[0]) * (r[3] - r[1]);
    }
    if (total > FPS_MAX_ENTRIES) return fail_too_many(total);
    std::vector<int> start((size_t)n_tiles + 1, 0);
    for (int i : order) {
        const int* r = proj[i].rect;
        for (int y = r[1]; y < r[3]; ++y)
            for (int x = r[0]; x < r[2]; ++x) ++start[y * cam.tiles_x + x + 1];
    }
    for (int t = 0; t < n_tiles; ++t) start[t + 1] += start[t];
    // Tile lists hold ranks in depth order, and the projected gaussians are copied in that order: every tile then
    // walks memory forwards instead of jumping around it.
    std::vector<FpsProjected> sorted(order.size());
    for (size_t k = 0; k < order.size(); ++k) sorted[k] = proj[order[k]];
    std::vector<int> entries((size_t)start[n_tiles]);
    std::vector<int> cursor(start.begin(), start.end() - 1);
    for (size_t k = 0; k < sorted.size(); ++k) {
        const int* r = sorted[k].rect;
        for (int y = r[1]; y < r[3]; ++y)
            for (int x = r[0]; x < r[2]; ++x) entries[cursor[y * cam.tiles_x + x]++] = (int)k;
    }

    parallel_for(n_tiles, nt, 1, [&](int t) {
        render_tile(cam, t, entries.data(), start[t], start[t + 1], sorted.data(), bg, out_rgb, out_alpha);
    });
    return 0;
}

static int device_count() { return 0; }

#endif

// ---------------------------------------------------------------------------------------------------------------
// Nearest triangle (host code in both builds): exact closest point on a mesh through a uniform grid.
// ---------------------------------------------------------------------------------------------------------------

// Closest point on triangle abc to p, as barycentric weights (Ericson, Real-Time Collision Detection, 5.1.5).
static void closest_on_triangle(const double* p, const double* a, const double* b, const double* c, double bary[3]) {
    double ab[3], ac[3], ap[3], bp[3], cp[3];
    for (int i = 0; i < 3; ++i) {
        ab[i] = b[i] - a[i]; ac[i] = c[i] - a[i]; ap[i] = p[i] - a[i]; bp[i] = p[i] - b[i]; cp[i] = p[i] - c[i];
    }
    auto dot = [](const double* u, const double* v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; };
    double d1 = dot(ab, ap), d2 = dot(ac, ap);
    if (d1 <= 0 && d2 <= 0) { bary[0] = 1; bary[1] = 0; bary[2] = 0; return; }
    double d3 = dot(ab, bp), d4 = dot(ac, bp);
    if (d3 >= 0 && d4 <= d3) { bary[0] = 0; bary[1] = 1; bary[2] = 0; return; }
    double vc = d1 * d4 - d3 * d2;
    if (vc <= 0 && d1 >= 0 && d3 <= 0 && d1 - d3 > 0) {
        double v = d1 / (d1 - d3);
        bary[0] = 1 - v; bary[1] = v; bary[2] = 0; return;
    }
    double d5 = dot(ab, cp), d6 = dot(ac, cp);
    if (d6 >= 0 && d5 <= d6) { bary[0] = 0; bary[1] = 0; bary[2] = 1; return; }
    double vb = d5 * d2 - d1 * d6;
    if (vb <= 0 && d2 >= 0 && d6 <= 0 && d2 - d6 > 0) {
        double w = d2 / (d2 - d6);
        bary[0] = 1 - w; bary[1] = 0; bary[2] = w; return;
    }
    double va = d3 * d6 - d5 * d4;
    if (va <= 0 && (d4 - d3) >= 0 && (d5 - d6) >= 0 && (d4 - d3) + (d5 - d6) > 0) {
        double w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
        bary[0] = 0; bary[1] = 1 - w; bary[2] = w; return;
    }
    double sum = va + vb + vc;
    if (!(sum > 0)) { bary[0] = 1; bary[1] = 0; bary[2] = 0; return; }  // degenerate triangle: its first vertex
    double v = vb / sum, w = vc / sum;
    bary[0] = 1 - v - w; bary[1] = v; bary[2] = w;
}

struct TriGrid {
    double lo[3], h;
    int dims[3];
    std::vector<int> start, tris;
    int cell_index(int x, int y, int z) const { return (z * dims[1] + y) * dims[0] + x; }
};

static void build_grid(const float* verts, const int* faces, int nf, TriGrid& g) {
    double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    double mean_extent = 0;
    for (int f = 0; f < nf; ++f) {
        double flo[3] = {INFINITY, INFINITY, INFINITY}, fhi[3] = {-INFINITY, -INFINITY, -INFINITY};
        for (int k = 0; k < 3; ++k)
            for (int i = 0; i < 3; ++i) {
                double v = verts[3 * (size_t)faces[3 * f + k] + i];
                flo[i] = std::min(flo[i], v); fhi[i] = std::max(fhi[i], v);
            }
        for (int i = 0; i < 3; ++i) {
            lo[i] = std::min(lo[i], flo[i]); hi[i] = std::max(hi[i], fhi[i]);
            mean_extent += (fhi[i] - flo[i]) / (3.0 * nf);
        }
    }
    double span = std::max({hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1e-12});
    // About two triangles' extent per cell, and never more than 128 cells a side.
    g.h = std::max({2.0 * mean_extent, span / 128.0, 1e-12});
    for (int i = 0; i < 3; ++i) {
        g.lo[i] = lo[i];
        g.dims[i] = std::max(1, (int)std::ceil((hi[i] - lo[i]) / g.h));
    }
    size_t n_cells = (size_t)g.dims[0] * g.dims[1] * g.dims[2];
    g.start.assign(n_cells + 1, 0);
    auto for_cells = [&](int f, auto&& fn) {
        int clo[3], chi[3];
        for (int i = 0; i < 3; ++i) {
            double flo = INFINITY, fhi = -INFINITY;
            for (int k = 0; k < 3; ++k) {
                double v = verts[3 * (size_t)faces[3 * f + k] + i];
                flo = std::min(flo, v); fhi = std::max(fhi, v);
            }
            clo[i] = std::clamp((int)std::floor((flo - g.lo[i]) / g.h), 0, g.dims[i] - 1);
            chi[i] = std::clamp((int)std::floor((fhi - g.lo[i]) / g.h), 0, g.dims[i] - 1);
        }
        for (int z = clo[2]; z <= chi[2]; ++z)
            for (int y = clo[1]; y <= chi[1]; ++y)
                for (int x = clo[0]; x <= chi[0]; ++x) fn(g.cell_index(x, y, z));
    };
    for (int f = 0; f < nf; ++f) for_cells(f, [&](int c) { ++g.start[c + 1]; });
    for (size_t c = 0; c < n_cells; ++c) g.start[c + 1] += g.start[c];
    g.tris.resize(g.start[n_cells]);
    std::vector<int> cursor(g.start.begin(), g.start.end() - 1);
    for (int f = 0; f < nf; ++f) for_cells(f, [&](int c) { g.tris[cursor[c]++] = f; });
}

static void nearest_one(const TriGrid& g, const float* verts, const int* faces, const float* point, int* out_face,
                        float* out_bary, float* out_dist) {
    double p[3] = {point[0], point[1], point[2]};
    int cell[3];
    for (int i = 0; i < 3; ++i) cell[i] = std::clamp((int)std::floor((p[i] - g.lo[i]) / g.h), 0, g.dims[i] - 1);
    double best = INFINITY, best_bary[3] = {1, 0, 0};
    int best_face = -1;
    int max_r = std::max({g.dims[0], g.dims[1], g.dims[2]});
    for (int r = 0; r <= max_r; ++r) {
        int lo[3], hi[3];
        for (int i = 0; i < 3; ++i) { lo[i] = std::max(0, cell[i] - r); hi[i] = std::min(g.dims[i] - 1, cell[i] + r); }
        auto visit = [&](int x, int y, int z) {
            int c = g.cell_index(x, y, z);
            for (int e = g.start[c]; e < g.start[c + 1]; ++e) {
                int f = g.tris[e];
                double v[3][3];
                for (int k = 0; k < 3; ++k)
                    for (int i = 0; i < 3; ++i) v[k][i] = verts[3 * (size_t)faces[3 * f + k] + i];
                double bary[3];
                closest_on_triangle(p, v[0], v[1], v[2], bary);
                double d2 = 0;
                for (int i = 0; i < 3; ++i) {
                    double q = bary[0] * v[0][i] + bary[1] * v[1][i] + bary[2] * v[2][i] - p[i];
                    d2 += q * q;
                }
                if (d2 < best || (d2 == best && f < best_face)) {
                    best = d2; best_face = f;
                    best_bary[0] = bary[0]; best_bary[1] = bary[1]; best_bary[2] = bary[2];
                }
            }
        };
        // Only the shell at Chebyshev distance r is new: whole rows where y or z is on the shell, else its two ends.
        for (int z = lo[2]; z <= hi[2]; ++z)
            for (int y = lo[1]; y <= hi[1]; ++y) {
                if (std::abs(z - cell[2]) == r || std::abs(y - cell[1]) == r) {
                    for (int x = lo[0]; x <= hi[0]; ++x) visit(x, y, z);
                } else {
                    if (cell[0] - r >= 0) visit(cell[0] - r, y, z);
                    if (r > 0 && cell[0] + r <= g.dims[0] - 1) visit(cell[0] + r, y, z);
                }
            }
        // What is not searched yet is the grid minus the searched box: up to six slabs. Stop when the best
        // distance found is no larger than the distance to the nearest slab.
        double glo[3], ghi[3];
        for (int i = 0; i < 3; ++i) { glo[i] = g.lo[i]; ghi[i] = g.lo[i] + g.dims[i] * g.h; }
        auto box_d2 = [&](const double* blo, const double* bhi) {
            double d2 = 0;
            for (int i = 0; i < 3; ++i) {
                double d = std::max({blo[i] - p[i], 0.0, p[i] - bhi[i]});
                d2 += d * d;
            }
            return d2;
        };
        double bound2 = INFINITY;
        for (int i = 0; i < 3; ++i) {
            if (lo[i] > 0) {
                double bhi[3] = {ghi[0], ghi[1], ghi[2]};
                bhi[i] = g.lo[i] + lo[i] * g.h;
                bound2 = std::min(bound2, box_d2(glo, bhi));
            }
            if (hi[i] < g.dims[i] - 1) {
                double blo[3] = {glo[0], glo[1], glo[2]};
                blo[i] = g.lo[i] + (hi[i] + 1) * g.h;
                bound2 = std::min(bound2, box_d2(blo, ghi));
            }
        }
        if (bound2 == INFINITY) break;
        if (best_face >= 0 && best <= bound2) break;
    }
    *out_face = best_face;
    for (int i = 0; i < 3; ++i) out_bary[i] = (float)best_bary[i];
    *out_dist = (float)std::sqrt(best);
}

// ---------------------------------------------------------------------------------------------------------------
// C ABI
// ---------------------------------------------------------------------------------------------------------------

FPS_EXPORT int fps_abi_version(void) { return FPS_ABI_VERSION; }

FPS_EXPORT int fps_backend(void) { return FPS_BACKEND; }

FPS_EXPORT int fps_device_count(void) { return device_count(); }

FPS_EXPORT const char* fps_last_error(void) { return g_error; }

// camera: 21 floats (view row-major 4x4, fx, fy, cx, cy, near). out_rgb: (height, width, 3); out_alpha may be NULL.
// Python validated everything; the checks here are a last line of defence, not the user-facing ones.
FPS_EXPORT int fps_render(const float* camera, int width, int height, int n, const float* means, const float* scales,
                          const float* rotations, const float* opacities, const float* sh, int sh_degree,
                          const float* background, float* out_rgb, float* out_alpha, int n_threads) {
    if (!camera || !background || !out_rgb) return fail("null camera, background or output");
    if (width <= 0 || height <= 0 || width > 16384 || height > 16384) return fail("image size out of range");
    if (n < 0 || (n > 0 && (!means || !scales || !rotations || !opacities || !sh)))
        return fail("bad gaussian arrays");
    if (sh_degree < 0 || sh_degree > 3) return fail("sh_degree must be 0..3");
    if (!(camera[20] > 0.0f)) return fail("near plane must be positive");
    FpsCamera cam = fps_make_camera(camera, width, height);
    FpsScene scene{n, means, scales, rotations, opacities, sh, sh_degree};
    g_error[0] = '\0';
    return render_scene(cam, scene, background, out_rgb, out_alpha, n_threads);
}

// For each point: the nearest triangle, the barycentric weights of the closest point on it, and the distance.
FPS_EXPORT int fps_nearest_triangles(const float* points, int n, const float* verts, int nv, const int* faces, int nf,
                                     int* out_face, float* out_bary, float* out_dist, int n_threads) {
    if (n < 0 || nv <= 0 || nf <= 0 || !points || !verts || !faces || !out_face || !out_bary || !out_dist)
        return fail("bad arguments to fps_nearest_triangles");
    for (int i = 0; i < 3 * nf; ++i)
        if (faces[i] < 0 || faces[i] >= nv) return fail("face index out of range");
    TriGrid grid;
    build_grid(verts, faces, nf, grid);
    parallel_for(n, thread_count(n_threads), 256, [&](int i) {
        nearest_one(grid, verts, faces, points + 3 * (size_t)i, out_face + i, out_bary + 3 * (size_t)i, out_dist + i);
    });
    return 0;
}
