/* Renders one frame with a Windows build of the splat library, for tests/journeys/test_platform_preview.py (run
 * under wine). Usage: wine_harness.exe LIBRARY.dll SCENE.bin OUT.bin
 * SCENE.bin: int32 width, height, n, sh_degree; float32 camera[21], background[3], means[n*3], scales[n*3],
 * rotations[n*4], opacities[n], sh[n*K*3] (K = (degree + 1)^2). OUT.bin: float32 rgb[h*w*3], alpha[h*w]. */
#include <stdio.h>
#include <stdlib.h>
#include <windows.h>

typedef int (*render_fn)(const float*, int, int, int, const float*, const float*, const float*, const float*,
                         const float*, int, const float*, float*, float*, int);
typedef int (*int_fn)(void);
typedef const char* (*error_fn)(void);

static float* read_floats(FILE* f, size_t count) {
    float* out = (float*)malloc((count ? count : 1) * sizeof(float));
    if (!out || fread(out, sizeof(float), count, f) != count) { fprintf(stderr, "short scene file\n"); exit(3); }
    return out;
}

int main(int argc, char** argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s LIBRARY.dll SCENE.bin OUT.bin\n", argv[0]); return 2; }
    HMODULE lib = LoadLibraryA(argv[1]);
    if (!lib) { fprintf(stderr, "LoadLibrary(%s) failed: error %lu\n", argv[1], GetLastError()); return 4; }
    render_fn render = (render_fn)GetProcAddress(lib, "fps_render");
    int_fn abi = (int_fn)GetProcAddress(lib, "fps_abi_version");
    error_fn last_error = (error_fn)GetProcAddress(lib, "fps_last_error");
    if (!render || !abi || !last_error) { fprintf(stderr, "the library lacks the fps_* functions\n"); return 5; }
    FILE* f = fopen(argv[2], "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", argv[2]); return 3; }
    int head[4];
    if (fread(head, sizeof(int), 4, f) != 4) { fprintf(stderr, "short scene file\n"); return 3; }
    int w = head[0], h = head[1], n = head[2], degree = head[3], k = (degree + 1) * (degree + 1);
    float* camera = read_floats(f, 21);
    float* background = read_floats(f, 3);
    float* means = read_floats(f, (size_t)n * 3);
    float* scales = read_floats(f, (size_t)n * 3);
    float* rotations = read_floats(f, (size_t)n * 4);
    float* opacities = read_floats(f, (size_t)n);
    float* sh = read_floats(f, (size_t)n * k * 3);
    fclose(f);
    float* rgb = (float*)malloc((size_t)w * h * 3 * sizeof(float));
    float* alpha = (float*)malloc((size_t)w * h * sizeof(float));
    int status = render(camera, w, h, n, means, scales, rotations, opacities, sh, degree, background, rgb, alpha, 0);
    if (status != 0) { fprintf(stderr, "fps_render failed: %s\n", last_error()); return 6; }
    FILE* o = fopen(argv[3], "wb");
    if (!o) { fprintf(stderr, "cannot write %s\n", argv[3]); return 3; }
    fwrite(rgb, sizeof(float), (size_t)w * h * 3, o);
    fwrite(alpha, sizeof(float), (size_t)w * h, o);
    fclose(o);
    printf("abi %d: rendered %dx%d from %d gaussians\n", abi(), w, h, n);
    return 0;
}
