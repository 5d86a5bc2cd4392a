// 3D Gaussian Splatting forward math, written once for the CPU builds (g++, zig c++) and the GPU build (nvcc).
//
// Conventions (shared with addon/preview/raster.py and the numpy reference in tests/unit/test_raster.py):
//   camera: world -> camera "view" matrix, row-major 4x4, OpenCV axes (x right, y down, z forward);
//           pinhole intrinsics fx, fy, cx, cy in pixels; pixel (px, py) covers [px, px+1) x [py, py+1),
//           so its centre is (px + 0.5, py + 0.5).
//   gaussian: mean (3), linear scale (3), rotation quaternion (w, x, y, z; normalised here),
//             opacity in [0, 1] (already activated), SH coefficients (K, 3) with K = (degree + 1)^2.
#pragma once

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FPS_HD __host__ __device__ __forceinline__
#else
#define FPS_HD static inline
#endif

#define FPS_TILE 16
#define FPS_TILE_PIXELS (FPS_TILE * FPS_TILE)
#define FPS_LOWPASS 0.3f          // EWA low-pass filter added to the 2D covariance diagonal
#define FPS_ALPHA_MIN (1.0f / 255.0f)
#define FPS_ALPHA_MAX 0.99f
#define FPS_T_MIN 0.0001f         // front-to-back compositing stops once transmittance would fall below this

struct FpsCamera {
    float view[16];
    float fx, fy, cx, cy;
    float near_z;
    float campos[3];
    int width, height;
    int tiles_x, tiles_y;
};

// One gaussian after projection: everything the per-pixel blend needs.
struct FpsProjected {
    float mx, my;       // centre in pixels
    float depth;        // camera-space z
    float conic[3];     // inverse 2D covariance (a, b, c) of [[a, b], [b, c]]
    float opacity;
    float rgb[3];
    float extent[2];    // half-size of the box outside which alpha < FPS_ALPHA_MIN (so blending skips it anyway)
    int rect[4];        // touched tiles: x in [rect[0], rect[2]), y in [rect[1], rect[3])
};

FPS_HD int fps_sh_coeffs(int degree) { return (degree + 1) * (degree + 1); }

// Plain comparisons (not fminf/fmaxf): they inline to one instruction on every compiler without -ffast-math.
FPS_HD float fps_minf(float a, float b) { return a < b ? a : b; }
FPS_HD float fps_maxf(float a, float b) { return a > b ? a : b; }
FPS_HD float fps_clampf(float v, float lo, float hi) { return fps_minf(fps_maxf(v, lo), hi); }

FPS_HD int fps_clamp_tile(float t, int n) {
    // Clamp in float first: an off-screen gaussian can give values beyond the int range.
    t = fps_clampf(t, 0.0f, (float)n);
    return (int)t;
}

// Real spherical harmonics, degrees 0..3, in the ordering used by the INRIA 3DGS code.
FPS_HD void fps_sh_to_rgb(const float* sh, int degree, float x, float y, float z, float rgb[3]) {
    const float C0 = 0.28209479177387814f;
    const float C1 = 0.4886025119029199f;
    const float C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                         -1.0925484305920792f, 0.5462742152960396f};
    const float C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f, 0.3731763325901154f,
                         -0.4570457994644658f, 1.445305721320277f, -0.5900435899266435f};
    float basis[16];
    basis[0] = C0;
    int k = 1;
    if (degree > 0) {
        basis[1] = -C1 * y;
        basis[2] = C1 * z;
        basis[3] = -C1 * x;
        k = 4;
        if (degree > 1) {
            float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
            basis[4] = C2[0] * xy;
            basis[5] = C2[1] * yz;
            basis[6] = C2[2] * (2.0f * zz - xx - yy);
            basis[7] = C2[3] * xz;
            basis[8] = C2[4] * (xx - yy);
            k = 9;
            if (degree > 2) {
                basis[9] = C3[0] * y * (3.0f * xx - yy);
                basis[10] = C3[1] * xy * z;
                basis[11] = C3[2] * y * (4.0f * zz - xx - yy);
                basis[12] = C3[3] * z * (2.0f * zz - 3.0f * xx - 3.0f * yy);
                basis[13] = C3[4] * x * (4.0f * zz - xx - yy);
                basis[14] = C3[5] * z * (xx - yy);
                basis[15] = C3[6] * x * (xx - 3.0f * yy);
                k = 16;
            }
        }
    }
    for (int c = 0; c < 3; ++c) {
        float acc = 0.0f;
        for (int i = 0; i < k; ++i) acc += basis[i] * sh[i * 3 + c];
        rgb[c] = fmaxf(acc + 0.5f, 0.0f);
    }
}

// Project gaussian i. Returns false when it is culled (behind the near plane, degenerate, or off-screen).
FPS_HD bool fps_project(const FpsCamera& cam, const float* mean, const float* scale, const float* rot,
                        float opacity, const float* sh, int degree, FpsProjected* out) {
    const float* V = cam.view;
    float tx = V[0] * mean[0] + V[1] * mean[1] + V[2] * mean[2] + V[3];
    float ty = V[4] * mean[0] + V[5] * mean[1] + V[6] * mean[2] + V[7];
    float tz = V[8] * mean[0] + V[9] * mean[1] + V[10] * mean[2] + V[11];
    if (!(tz > cam.near_z)) return false;  // also rejects NaN

    // 3D covariance Sigma = (R S)(R S)^T.
    float qw = rot[0], qx = rot[1], qy = rot[2], qz = rot[3];
    float qn = sqrtf(qw * qw + qx * qx + qy * qy + qz * qz);
    if (!(qn > 0.0f)) return false;
    qw /= qn; qx /= qn; qy /= qn; qz /= qn;
    float R[9] = {1.f - 2.f * (qy * qy + qz * qz), 2.f * (qx * qy - qw * qz), 2.f * (qx * qz + qw * qy),
                  2.f * (qx * qy + qw * qz), 1.f - 2.f * (qx * qx + qz * qz), 2.f * (qy * qz - qw * qx),
                  2.f * (qx * qz - qw * qy), 2.f * (qy * qz + qw * qx), 1.f - 2.f * (qx * qx + qy * qy)};
    float M[9];
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) M[r * 3 + c] = R[r * 3 + c] * scale[c];
    float S[9];
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
            S[r * 3 + c] = M[r * 3 + 0] * M[c * 3 + 0] + M[r * 3 + 1] * M[c * 3 + 1] + M[r * 3 + 2] * M[c * 3 + 2];

    // EWA splatting: 2D covariance J W Sigma W^T J^T. The Jacobian is taken at a position clamped to a little
    // beyond the view frustum, as in the reference implementation, so gaussians far off-screen stay stable.
    float W = (float)cam.width, H = (float)cam.height;
    float xl = (-0.15f * W - cam.cx) / cam.fx, xr = (1.15f * W - cam.cx) / cam.fx;
    float yl = (-0.15f * H - cam.cy) / cam.fy, yr = (1.15f * H - cam.cy) / cam.fy;
    float txc = fps_clampf(tx / tz, xl, xr) * tz;
    float tyc = fps_clampf(ty / tz, yl, yr) * tz;
    float j00 = cam.fx / tz, j02 = -cam.fx * txc / (tz * tz);
    float j11 = cam.fy / tz, j12 = -cam.fy * tyc / (tz * tz);
    // T = J * Wrot (2x3)
    float T0[3], T1[3];
    for (int c = 0; c < 3; ++c) {
        T0[c] = j00 * V[0 * 4 + c] + j02 * V[2 * 4 + c];
        T1[c] = j11 * V[1 * 4 + c] + j12 * V[2 * 4 + c];
    }
    float ST0[3], ST1[3];
    for (int r = 0; r < 3; ++r) {
        ST0[r] = S[r * 3 + 0] * T0[0] + S[r * 3 + 1] * T0[1] + S[r * 3 + 2] * T0[2];
        ST1[r] = S[r * 3 + 0] * T1[0] + S[r * 3 + 1] * T1[1] + S[r * 3 + 2] * T1[2];
    }
    float a = T0[0] * ST0[0] + T0[1] * ST0[1] + T0[2] * ST0[2] + FPS_LOWPASS;
    float b = T0[0] * ST1[0] + T0[1] * ST1[1] + T0[2] * ST1[2];
    float c = T1[0] * ST1[0] + T1[1] * ST1[1] + T1[2] * ST1[2] + FPS_LOWPASS;
    float det = a * c - b * b;
    if (!(det > 0.0f)) return false;
    float mid = 0.5f * (a + c);
    float lambda1 = mid + sqrtf(fmaxf(0.1f, mid * mid - det));
    float radius = ceilf(3.0f * sqrtf(lambda1));

    float u = cam.fx * tx / tz + cam.cx;
    float v = cam.fy * ty / tz + cam.cy;
    // The tiles are those of the usual 3-sigma square (the reference algorithm), trimmed to the box where
    // opacity * exp(power) can reach FPS_ALPHA_MIN at all: blending skips everything outside it, so trimming
    // changes no pixel, only the work. A faint gaussian (opacity < FPS_ALPHA_MIN) never contributes.
    if (!(opacity >= FPS_ALPHA_MIN)) return false;
    float reach = 2.0f * logf(opacity / FPS_ALPHA_MIN);
    float ex = sqrtf(fmaxf(reach, 0.0f) * a) * 1.001f + 0.01f;  // margin for rounding at the threshold
    float ey = sqrtf(fmaxf(reach, 0.0f) * c) * 1.001f + 0.01f;
    float rx = fminf(radius, ex), ry = fminf(radius, ey);
    int x0 = fps_clamp_tile(floorf((u - rx) / FPS_TILE), cam.tiles_x);
    int x1 = fps_clamp_tile(floorf((u + rx) / FPS_TILE) + 1.0f, cam.tiles_x);
    int y0 = fps_clamp_tile(floorf((v - ry) / FPS_TILE), cam.tiles_y);
    int y1 = fps_clamp_tile(floorf((v + ry) / FPS_TILE) + 1.0f, cam.tiles_y);
    if (x1 <= x0 || y1 <= y0) return false;

    float dx = mean[0] - cam.campos[0], dy = mean[1] - cam.campos[1], dz = mean[2] - cam.campos[2];
    float dn = sqrtf(dx * dx + dy * dy + dz * dz);
    if (dn > 0.0f) { dx /= dn; dy /= dn; dz /= dn; }
    fps_sh_to_rgb(sh, degree, dx, dy, dz, out->rgb);

    out->mx = u;
    out->my = v;
    out->depth = tz;
    out->conic[0] = c / det;
    out->conic[1] = -b / det;
    out->conic[2] = a / det;
    out->opacity = opacity;
    out->extent[0] = ex;
    out->extent[1] = ey;
    out->rect[0] = x0; out->rect[1] = y0; out->rect[2] = x1; out->rect[3] = y1;
    return true;
}

// One front-to-back compositing step of gaussian g onto the pixel centred at (px, py).
// Returns true when the pixel is saturated (transmittance would drop below FPS_T_MIN): stop there.
FPS_HD bool fps_blend(const FpsProjected& g, float px, float py, float* T, float C[3]) {
    float dx = g.mx - px, dy = g.my - py;
    float power = -0.5f * (g.conic[0] * dx * dx + g.conic[2] * dy * dy) - g.conic[1] * dx * dy;
    if (power > 0.0f) return false;
    float alpha = fps_minf(FPS_ALPHA_MAX, g.opacity * expf(power));
    if (alpha < FPS_ALPHA_MIN) return false;
    float test_T = *T * (1.0f - alpha);
    if (test_T < FPS_T_MIN) return true;
    float w = alpha * *T;
    C[0] += g.rgb[0] * w;
    C[1] += g.rgb[1] * w;
    C[2] += g.rgb[2] * w;
    *T = test_T;
    return false;
}

// Camera set-up shared by both drivers: `params` is view (16, row-major) then fx, fy, cx, cy, near.
FPS_HD FpsCamera fps_make_camera(const float* params, int width, int height) {
    FpsCamera cam;
    for (int i = 0; i < 16; ++i) cam.view[i] = params[i];
    cam.fx = params[16]; cam.fy = params[17]; cam.cx = params[18]; cam.cy = params[19];
    cam.near_z = params[20];
    cam.width = width; cam.height = height;
    cam.tiles_x = (width + FPS_TILE - 1) / FPS_TILE;
    cam.tiles_y = (height + FPS_TILE - 1) / FPS_TILE;
    // Camera centre: -R^T t.
    const float* V = cam.view;
    for (int i = 0; i < 3; ++i) cam.campos[i] = -(V[0 * 4 + i] * V[3] + V[1 * 4 + i] * V[7] + V[2 * 4 + i] * V[11]);
    return cam;
}
