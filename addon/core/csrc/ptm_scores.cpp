// The acoustic scores of pocketsphinx's context-independent senones, for all-phone recognition (core/ptm_scores.py).
//
// pocketsphinx's bundled en-us model is phonetically tied (PTM): every phone has one codebook of Gaussians per
// feature stream, and a senone's score, per stream, adds its mixture weights to the scores of the codebook's best
// few Gaussians. The decoder scores them one Gaussian at a time, stopping each as soon as it cannot make the best
// few; here every Gaussian of a codebook is scored at once, one density per vector lane, with the same float
// operations in the same order (no FMA contraction: build with -ffp-contract=off), then the best few are kept and
// the senones assembled with the same integer arithmetic, so the scores are the decoder's own, bit for bit
// (tests/unit/core/test_ptm_scores.py checks them against its score dump). Written for FacePolicy from the model
// files' documented layout; no pocketsphinx code is in it.

#include <climits>
#include <cstdint>
#include <cstring>

// On x86-64 Linux the exported function, with everything it calls inlined into it, is compiled for AVX2 and for the
// baseline, and the loader picks what the CPU has: the same float operations on more lanes at once, so the same
// scores (about 15 % less time here; bench/bench_recognition.py).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define FP_WIDEST __attribute__((target_clones("avx2", "default"), flatten))
#else
#define FP_WIDEST
#endif

#if defined(_WIN32)
#define FP_EXPORT extern "C" __declspec(dllexport)
#else
#define FP_EXPORT extern "C" __attribute__((visibility("default")))
#endif

namespace {

struct Kept {  // one of a codebook's best Gaussians: its index and truncated log score
    int32_t cw;
    int32_t score;
};

constexpr int kShift = 10;        // scores are kept in units of 2^10 of the log base
constexpr int32_t kMaxNegAscr = 96;  // a Gaussian's negated normalised score saturates here
constexpr int kMaxDensity = 256;

inline int32_t truncated(float d) { return d < (float)INT32_MIN ? INT32_MIN : (int32_t)d; }

// The best ``topn`` of one codebook's densities ``d`` for this frame, starting from the previous frame's (``kept``,
// in and out): those scored again and re-sorted, then (when ``search``) every density at least as good as the worst
// kept and not kept already inserted above its equals (the decoder's order, which decides ties). A codebook that no
// senone in play uses is only scored again, as the decoder does.
void keep_best(const float *d, int n_density, int topn, Kept *kept, bool search) {
    for (int i = 0; i < topn; ++i) {
        const int32_t s = truncated(d[kept[i].cw]);
        kept[i].score = s;
        const Kept v = kept[i];
        int k = i - 1;
        for (; k >= 0 && s > kept[k].score; --k) kept[k + 1] = kept[k];
        kept[k + 1] = v;
    }
    if (!search) return;
    for (int c = 0; c < n_density; ++c) {
        if (d[c] < (float)kept[topn - 1].score) continue;
        int i = 0;
        while (i < topn && kept[i].cw != c) ++i;
        if (i < topn) continue;
        const int32_t s = truncated(d[c]);
        int k = topn - 2;
        for (; k >= 0 && s >= kept[k].score; --k) kept[k + 1] = kept[k];
        kept[k + 1] = Kept{c, s};
    }
}

inline int32_t log_add(const uint8_t *table, int32_t x, int32_t y) {  // negated log probabilities, both < 256
    return x > y ? y - table[x - y] : x - table[y - x];
}

}  // namespace

// Senone scores for ``frames`` feature vectors.
//   feat      (frames, n_feat * veclen) float32: the decoder's features (cepstra, deltas, double deltas)
//   mean_t    (n_mgau, n_feat, veclen, n_density) float32: the means, the density index fastest
//   prec_t    (n_mgau, n_feat, veclen, n_density) float32: the decoder's precomputed 1/(2 var) in log units
//   det       (n_mgau, n_feat, n_density) float32: the decoder's precomputed log normalisers
//   mixw      (n_feat, n_density, n_senone) uint8: negated quantised log mixture weights of the senones scored
//   sen2cb    (n_senone) int32: each senone's codebook
//   table     (256) uint8: the log-add table in units of 2^10 of the log base
//   first     frames at the start where only codebook ``first_cb`` is in play (the search starts in silence)
//   kept      (n_mgau, n_feat, topn) pairs of int32: the best densities carried from frame to frame (in and out)
//   out       (frames, n_senone) int32: the scores, each frame's best 0, larger worse
// Returns 0, or -1 for sizes it does not handle.
FP_EXPORT FP_WIDEST int fp_ptm_senones(const float *feat, int frames, const float *mean_t, const float *prec_t,
                             const float *det, const uint8_t *mixw, const int32_t *sen2cb, const uint8_t *table,
                             int n_mgau, int n_feat, int veclen, int n_density, int n_senone, int topn, int first,
                             int first_cb, int32_t *kept_io, int32_t *out) {
    if (n_density > kMaxDensity || n_density < 1 || topn < 1 || topn > n_density || n_feat < 1 || n_feat > 8 ||
        first_cb < 0 || first_cb >= n_mgau)
        return -1;
    float d[kMaxDensity];
    Kept *kept = reinterpret_cast<Kept *>(kept_io);
    const int stride = n_feat * veclen;
    int32_t norm[8];
    for (int t = 0; t < frames; ++t) {
        const float *x = feat + (size_t)t * stride;
        for (int f = 0; f < n_feat; ++f) norm[f] = INT32_MIN;
        for (int m = 0; m < n_mgau; ++m) {
            for (int f = 0; f < n_feat; ++f) {
                const size_t mf = (size_t)m * n_feat + f;
                const float *z = x + f * veclen;
                const float *mu = mean_t + mf * veclen * n_density;
                const float *pr = prec_t + mf * veclen * n_density;
                std::memcpy(d, det + mf * n_density, sizeof(float) * n_density);
                for (int j = 0; j < veclen; ++j) {  // dimension by dimension, as the decoder sums them
                    const float zj = z[j];
                    const float *mj = mu + (size_t)j * n_density;
                    const float *pj = pr + (size_t)j * n_density;
                    for (int c = 0; c < n_density; ++c) {
                        const float diff = zj - mj[c];
                        const float sq = diff * diff;
                        const float term = sq * pj[c];
                        d[c] = d[c] - term;
                    }
                }
                Kept *k = kept + mf * topn;
                const bool in_play = t >= first || m == first_cb;
                keep_best(d, n_density, topn, k, in_play);
                if (in_play) {
                    const int32_t top = k[0].score >> kShift;
                    if (top > norm[f]) norm[f] = top;
                }
            }
        }
        int32_t *o = out + (size_t)t * n_senone;
        int32_t best = INT32_MAX;
        for (int s = 0; s < n_senone; ++s) {
            const int cb = sen2cb[s];
            if (t < first && cb != first_cb) {
                o[s] = 0;
                continue;
            }
            int32_t total = 0;
            for (int f = 0; f < n_feat; ++f) {
                const Kept *k = kept + ((size_t)cb * n_feat + f) * topn;
                int32_t den = 0;
                for (int i = 0; i < topn; ++i) {
                    int32_t a = -((k[i].score >> kShift) - norm[f]);
                    if (a > kMaxNegAscr) a = kMaxNegAscr;
                    const int32_t v = mixw[((size_t)f * n_density + k[i].cw) * n_senone + s] + a;
                    den = i == 0 ? v : log_add(table, den, v);
                }
                total += den;
            }
            o[s] = total;
            if (total < best) best = total;
        }
        for (int s = 0; s < n_senone; ++s)
            if (t >= first || sen2cb[s] == first_cb) o[s] -= best;
    }
    return 0;
}
