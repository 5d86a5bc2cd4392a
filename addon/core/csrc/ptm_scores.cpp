// All-phone recognition with pocketsphinx's bundled model, as its decoder does it (core/ptm_scores.py): the acoustic
// scores of the context-independent senones and the phone-loop search over them; and, for forced alignment, the
// decoder's own scoring step of every senone its searches ask for (fp_ptm_hook, at the end).
//
// pocketsphinx's bundled en-us model is phonetically tied (PTM): every phone has one codebook of Gaussians per
// feature stream, and a senone's score, per stream, adds its mixture weights to the scores of the codebook's best
// few Gaussians. The decoder scores them one Gaussian at a time, stopping each as soon as it cannot make the best
// few; here every Gaussian of a codebook is scored at once, one density per vector lane, with the same float
// operations in the same order (no FMA contraction: build with -ffp-contract=off), then the best few are kept and
// the senones assembled with the same integer arithmetic, so the scores are the decoder's own, bit for bit
// (tests/unit/core/test_ptm_scores.py checks them against its score dump).
//
// The search is the decoder's all-phone search with context-independent phones: one three-state left-to-right HMM
// per phone, every phone able to follow every phone with the phone language model's score (its trigram and bigram
// lookups handed in as tables, so they are the decoder's own numbers), a beam on phone entries and one on phone
// exits, and a backtrace over the exits from the last frame. Only the phones whose HMMs are alive in a frame have
// their codebooks searched and their senones scored there, as in the decoder, whose scores depend on that set.
// Written for FacePolicy after studying how pocketsphinx 5 (BSD-2-Clause) scores and searches; none of its code is
// copied here, and the model files are read by core/ptm_scores.py.

#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

// On x86-64 Linux the exported scoring functions, with everything they call inlined into them, are compiled for AVX2
// and for the baseline, and the loader picks what the CPU has: the same float operations on more lanes at once, so
// the same scores (about 15 % less time here; docs/BENCHMARKS.md, sixteenth session).
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

// Every density of one codebook's stream for observation ``z`` (``veclen`` dimensions): ``mu`` and ``pr`` hold
// (veclen, n_density) means and precisions, ``det`` the n_density normalisers. Each density is its normaliser less
// the terms of the dimensions in order, as the decoder sums them (every density on its own vector lane).
inline void densities(const float *z, const float *mu, const float *pr, const float *det, int veclen,
                      int n_density, float *d) {
    std::memcpy(d, det, sizeof(float) * n_density);
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
}

inline int32_t log_add(const uint8_t *table, int32_t x, int32_t y) {  // negated log probabilities, both < 256
    return x > y ? y - table[x - y] : x - table[y - x];
}


// One frame's scores of the senones ``sen`` (``n_sen`` of them, their codebooks ``sen2cb``) for observation ``x``:
// every codebook's best densities carried on in ``kept`` (only those of the codebooks in ``play`` searched anew),
// each stream's scores normalised to the best codebook in play, the senones assembled and the best made 0.
// ``score`` has one entry per senone id.
void score_frame(const float *x, const float *mean_t, const float *prec_t, const float *det, const uint8_t *mixw,
                 const int32_t *sen2cb, const uint8_t *table, int n_mgau, int n_feat, int veclen, int n_density,
                 int n_mixw_sen, int topn, const uint8_t *play, const int32_t *sen, int n_sen, Kept *kept,
                 int32_t *score) {
    float d[kMaxDensity];
    int32_t norm[8];
    for (int f = 0; f < n_feat; ++f) norm[f] = INT32_MIN;
    for (int m = 0; m < n_mgau; ++m) {
        for (int f = 0; f < n_feat; ++f) {
            const size_t mf = (size_t)m * n_feat + f;
            densities(x + f * veclen, mean_t + mf * veclen * n_density, prec_t + mf * veclen * n_density,
                      det + mf * n_density, veclen, n_density, d);
            Kept *k = kept + mf * topn;
            keep_best(d, n_density, topn, k, play[m] != 0);
            if (play[m]) {
                const int32_t top = k[0].score >> kShift;
                if (top > norm[f]) norm[f] = top;
            }
        }
    }
    int32_t best = INT32_MAX;
    for (int i = 0; i < n_sen; ++i) {
        const int s = sen[i];
        const int cb = sen2cb[s];
        int32_t total = 0;
        for (int f = 0; f < n_feat; ++f) {
            const Kept *k = kept + ((size_t)cb * n_feat + f) * topn;
            int32_t den = 0;
            for (int j = 0; j < topn; ++j) {
                int32_t a = -((k[j].score >> kShift) - norm[f]);
                if (a > kMaxNegAscr) a = kMaxNegAscr;
                const int32_t v = mixw[((size_t)f * n_density + k[j].cw) * n_mixw_sen + s] + a;
                den = j == 0 ? v : log_add(table, den, v);
            }
            total += den;
        }
        score[s] = total;
        if (total < best) best = total;
    }
    for (int i = 0; i < n_sen; ++i) score[sen[i]] -= best;
}

bool sizes_ok(int n_mgau, int n_feat, int n_density, int topn) {
    return n_density <= kMaxDensity && n_density >= 1 && topn >= 1 && topn <= n_density && n_feat >= 1 &&
           n_feat <= 8 && n_mgau >= 1;
}

// --- the phone-loop search ---------------------------------------------------------------------------------------

constexpr int32_t kWorst = (int32_t)0xE0000000;  // the decoder's worst score (room to add to it without wrapping)
constexpr int32_t kTmatWorst = -255;

struct Hmm {  // one phone's three emitting states, its entry (state 0) and exit
    int32_t score[3];
    int32_t history[3];
    int32_t out_score;
    int32_t out_history;
    int32_t best;
    int32_t frame;  // the frame it is alive in, or -1
    void clear() {
        for (int i = 0; i < 3; ++i) score[i] = kWorst, history[i] = -1;
        out_score = kWorst;
        out_history = -1;
        best = kWorst;
        frame = -1;
    }
};

struct Exit {  // a phone left at frame ``end`` with ``score``; ``from``: the exit it was entered from (0: none)
    int32_t end;
    int32_t phone;
    int32_t from;
    int32_t score;
};

// One frame of Viterbi inside a phone (``sen``: the senone scores, negated inside; ``tp``: its 3x4 negated
// transition log probabilities); returns the best state score.
int32_t viterbi_step(Hmm &h, const int32_t *senid, const uint8_t *tp, const int32_t *sen) {
    auto prob = [tp](int i, int j) { return -(int32_t)tp[i * 4 + j]; };
    int32_t s2 = h.score[2] - sen[senid[2]];
    int32_t s1 = h.score[1] - sen[senid[1]];
    int32_t s0 = h.score[0] - sen[senid[0]];
    int32_t best = kWorst;
    auto settle = [&h, &best](int state, int32_t score) {  // a state's new score, floored, and the best so far
        if (score < kWorst) score = kWorst;
        if (score > best) best = score;
        h.score[state] = score;
    };
    int32_t t2 = INT32_MIN;
    if (s1 > kWorst) {  // into the exit
        const int32_t t1 = s2 + prob(2, 3);
        if (prob(1, 3) > kTmatWorst) t2 = s1 + prob(1, 3);
        int32_t s3;
        if (t1 > t2) {
            s3 = t1;
            h.out_history = h.history[2];
        } else {
            s3 = t2;
            h.out_history = h.history[1];
        }
        if (s3 < kWorst) s3 = kWorst;
        h.out_score = s3;
        best = s3;
    }
    {  // into state 2
        const int32_t t0 = s2 + prob(2, 2);
        const int32_t t1 = s1 + prob(1, 2);
        if (prob(0, 2) > kTmatWorst) t2 = s0 + prob(0, 2);
        if (t0 > t1) {
            if (t2 > t0) {
                s2 = t2;
                h.history[2] = h.history[0];
            } else {
                s2 = t0;
            }
        } else {
            if (t2 > t1) {
                s2 = t2;
                h.history[2] = h.history[0];
            } else {
                s2 = t1;
                h.history[2] = h.history[1];
            }
        }
        settle(2, s2);
    }
    {  // into state 1
        const int32_t t0 = s1 + prob(1, 1);
        const int32_t t1 = s0 + prob(0, 1);
        if (t0 > t1) {
            s1 = t0;
        } else {
            s1 = t1;
            h.history[1] = h.history[0];
        }
        settle(1, s1);
    }
    settle(0, s0 + prob(0, 0));  // staying in state 0
    h.best = best;
    return best;
}

}  // namespace

// The phone language model's scores as the search uses them, through the decoder's own lookups: ``trigram`` at
// [a][b][c] = tg(model, a, b, c) >> 10 and ``bigram`` at [a][b] = bg(model, a, b) >> 10 for the ``n`` phones'
// word ids ``wid``. ``tg`` and ``bg``: the addresses of pocketsphinx's ngram_tg_score and ngram_bg_score.
typedef int32_t (*TrigramFn)(void *, int32_t, int32_t, int32_t, int32_t *);
typedef int32_t (*BigramFn)(void *, int32_t, int32_t, int32_t *);

FP_EXPORT int fp_phone_lm_tables(void *tg, void *bg, void *model, const int32_t *wid, int n, int32_t *trigram,
                                 int32_t *bigram) {
    if (tg == nullptr || bg == nullptr || model == nullptr || n < 1) return -1;
    TrigramFn tgf = reinterpret_cast<TrigramFn>(tg);
    BigramFn bgf = reinterpret_cast<BigramFn>(bg);
    int32_t used = 0;
    for (int a = 0; a < n; ++a) {
        for (int b = 0; b < n; ++b) {
            bigram[a * n + b] = bgf(model, wid[a], wid[b], &used) >> kShift;
            int32_t *row = trigram + ((size_t)a * n + b) * n;
            for (int c = 0; c < n; ++c) row[c] = tgf(model, wid[a], wid[b], wid[c], &used) >> kShift;
        }
    }
    return 0;
}

// Senone scores for ``frames`` feature vectors, every frame's in play as the search's first frames have them (only
// codebook ``first_cb`` for the first ``first`` frames, then all). For checking the scores against the decoder's
// dump (its search keeps every phone alive after its first frames on speech).
//   feat      (frames, n_feat * veclen) float32: the decoder's features (cepstra, deltas, double deltas)
//   mean_t    (n_mgau, n_feat, veclen, n_density) float32: the means, the density index fastest
//   prec_t    (n_mgau, n_feat, veclen, n_density) float32: the decoder's precomputed 1/(2 var) in log units
//   det       (n_mgau, n_feat, n_density) float32: the decoder's precomputed log normalisers
//   mixw      (n_feat, n_density, n_senone) uint8: negated quantised log mixture weights of the senones scored
//   sen2cb    (n_senone) int32: each senone's codebook
//   table     (256) uint8: the log-add table in units of 2^10 of the log base
//   kept      (n_mgau, n_feat, topn) pairs of int32: the best densities carried from frame to frame (in and out)
//   out       (frames, n_senone) int32: the scores, each frame's best 0, larger worse (0 for those not in play)
// Returns 0, or -1 for sizes it does not handle.
FP_EXPORT FP_WIDEST int fp_ptm_senones(const float *feat, int frames, const float *mean_t, const float *prec_t,
                                       const float *det, const uint8_t *mixw, const int32_t *sen2cb,
                                       const uint8_t *table, int n_mgau, int n_feat, int veclen, int n_density,
                                       int n_senone, int topn, int first, int first_cb, int32_t *kept_io,
                                       int32_t *out) {
    if (!sizes_ok(n_mgau, n_feat, n_density, topn) || first_cb < 0 || first_cb >= n_mgau) return -1;
    Kept *kept = reinterpret_cast<Kept *>(kept_io);
    std::vector<uint8_t> play(n_mgau);
    std::vector<int32_t> all(n_senone), opening;
    for (int s = 0; s < n_senone; ++s) {
        all[s] = s;
        if (sen2cb[s] == first_cb) opening.push_back(s);
    }
    for (int t = 0; t < frames; ++t) {
        const bool start = t < first;
        for (int m = 0; m < n_mgau; ++m) play[m] = !start || m == first_cb;
        int32_t *o = out + (size_t)t * n_senone;
        std::memset(o, 0, sizeof(int32_t) * n_senone);
        const std::vector<int32_t> &sen = start ? opening : all;
        score_frame(feat + (size_t)t * n_feat * veclen, mean_t, prec_t, det, mixw, sen2cb, table, n_mgau, n_feat,
                    veclen, n_density, n_senone, topn, play.data(), sen.data(), (int)sen.size(), kept, o);
    }
    return 0;
}

// All-phone recognition of ``frames`` feature vectors: the scores as fp_ptm_senones makes them, for the phones
// alive in each frame, and the search. Phones are the codebooks (0 .. n_mgau-1); ``senid`` (n_mgau, 3): each
// phone's senones; ``tp`` (n_mgau, 3, 4): each phone's negated transition log probabilities in units of 2^10;
// ``trigram``, ``bigram``: fp_phone_lm_tables; ``sil``: the phone the search starts in; ``beam``, ``pbeam``: the
// entry and exit beams (log units >> 10, negative). Writes (phone, first frame, last frame) per segment into
// ``segments`` (3 * max_segments int32) and returns their number: 0 when no path ended, -1 for sizes it does not
// handle, -2 when more than max_segments were found (call again with room for the number returned in
// segments[0]).
FP_EXPORT FP_WIDEST int fp_allphone(const float *feat, int frames, const float *mean_t, const float *prec_t,
                                    const float *det, const uint8_t *mixw, const int32_t *sen2cb,
                                    const uint8_t *table, int n_mgau, int n_feat, int veclen, int n_density,
                                    int n_senone, int topn, const int32_t *senid, const uint8_t *tp,
                                    const int32_t *trigram, const int32_t *bigram, int sil, int32_t beam,
                                    int32_t pbeam, int32_t *kept_io, int32_t *segments, int max_segments) {
    if (!sizes_ok(n_mgau, n_feat, n_density, topn) || sil < 0 || sil >= n_mgau) return -1;
    for (int i = 0; i < 3 * n_mgau; ++i)
        if (senid[i] < 0 || senid[i] >= n_senone || sen2cb[senid[i]] != i / 3) return -1;
    const int n = n_mgau;
    Kept *kept = reinterpret_cast<Kept *>(kept_io);
    std::vector<Hmm> hmm(n);
    for (Hmm &h : hmm) h.clear();
    hmm[sil].score[0] = 0;  // the search starts in silence
    hmm[sil].history[0] = 0;
    hmm[sil].frame = 0;
    std::vector<Exit> exits;
    exits.reserve((size_t)frames * 8 + 16);
    std::vector<int32_t> score(n_senone, 0x7fff), sen;
    std::vector<uint8_t> play(n);
    for (int t = 0; t < frames; ++t) {
        sen.clear();
        for (int p = 0; p < n; ++p) {
            play[p] = hmm[p].frame == t;
            if (play[p])
                for (int st = 0; st < 3; ++st) sen.push_back(senid[p * 3 + st]);
        }
        score_frame(feat + (size_t)t * n_feat * veclen, mean_t, prec_t, det, mixw, sen2cb, table, n_mgau, n_feat,
                    veclen, n_density, n_senone, topn, play.data(), sen.data(), (int)sen.size(), kept,
                    score.data());
        int32_t best = kWorst;
        for (int p = 0; p < n; ++p) {
            if (!play[p]) continue;
            const int32_t b = viterbi_step(hmm[p], senid + p * 3, tp + p * 12, score.data());
            if (b > best) best = b;
        }
        // Exits: every live phone within the exit beam leaves an exit (with its language-model score) and stays
        // alive; the others are cleared.
        const int32_t first_exit = (int32_t)exits.size();
        const int32_t keep = best + pbeam;
        for (int p = 0; p < n; ++p) {
            Hmm &h = hmm[p];
            if (h.frame != t) continue;
            if (h.best >= keep) {
                exits.push_back(Exit{t, p, h.out_history, h.out_score});
                h.frame = t + 1;
            } else {
                h.clear();
            }
        }
        // Entries: from each new exit into every phone, within the entry beam and better than what is there.
        for (int32_t e = first_exit; e < (int32_t)exits.size(); ++e) {
            const Exit &x = exits[e];
            const int32_t *lm = x.from > 0 ? trigram + ((size_t)exits[x.from].phone * n + x.phone) * n
                                           : bigram + (size_t)x.phone * n;
            for (int q = 0; q < n; ++q) {
                const int32_t entered = x.score + lm[q];
                Hmm &to = hmm[q];
                if (entered > best + beam && entered > to.score[0]) {
                    to.score[0] = entered;
                    to.history[0] = e;
                    to.frame = t + 1;
                }
            }
        }
    }
    if (frames == 0 || exits.empty()) return 0;
    // The best exit in the last frame that has any (exit 0 is never one: it stands for "none"), then back.
    int32_t e = (int32_t)exits.size() - 1;
    while (e > 0 && exits[e].end > frames - 1) --e;
    if (e <= 0) return 0;
    const int32_t last = exits[e].end;
    int32_t best_exit = -1, best_score = INT32_MIN;
    for (; e > 0 && exits[e].end == last; --e) {
        if (exits[e].score > best_score) {
            best_score = exits[e].score;
            best_exit = e;
        }
    }
    if (best_exit < 0) return 0;
    int count = 0;
    for (int32_t i = best_exit; i > 0; i = exits[i].from) ++count;
    if (count > max_segments) {
        segments[0] = count;
        return -2;
    }
    int k = count;
    for (int32_t i = best_exit; i > 0; i = exits[i].from) {
        --k;
        segments[3 * k] = exits[i].phone;
        segments[3 * k + 1] = exits[i].from > 0 ? exits[exits[i].from].end + 1 : 0;
        segments[3 * k + 2] = exits[i].end;
    }
    return count;
}

// --- forced alignment: the decoder's own scoring step, with every Gaussian of a codebook scored at once -----------
//
// The alignment searches (the words' pass and the phones' pass) are pocketsphinx's own and score context-dependent
// senones, only those they have alive in a frame, each frame normalised over the codebooks those use. Here the
// decoder keeps its searches and its bookkeeping; only its phonetically-tied model's scoring step is replaced (the
// model's function table, copied with that one entry changed) by one that keeps the same state in the decoder's own
// structures (its per-frame history of each codebook's best densities, its set of codebooks in play) and makes the
// same numbers in the same order: the best densities found as above (every density scored at once, the decoder's
// float operations), normalised and clamped as it does, the senones assembled from its own mixture weights with its
// own log-add table. The layouts below are pocketsphinx 5.0's and 5.1's (src/acmod.h, src/ptm_mgau.h, src/ms_gauden.h,
// the decoder's first fields; core/ptm_scores.py hooks only those releases, HOOK_VERIFIED); fp_ptm_hook checks what
// it can of them against the model before changing anything.

namespace {

struct PsMgauFuncs {
    const char *name;
    int (*frame_eval)(void *, int16_t *, uint8_t *, int32_t, float **, int32_t, int32_t);
    void *transform;
    void *free_fn;
};
struct PsMgau {
    PsMgauFuncs *vt;
    int frame_idx;  // the next frame the acoustic model will score for the first time
};
struct Gauden {
    float ****mean;  // [codebook][stream][0]: densities * veclen floats
    float ****var;   // the same: the precomputed 1/(2 var)
    float ***det;
    void *lmath;
    int32_t n_mgau, n_feat, n_density;
    int32_t *featlen;
};
struct FastEval {
    Kept ***topn;  // [codebook][stream][topn], one block
    uint32_t *mgau_active;  // bit per codebook
};
struct Ptm {
    PsMgau base;
    void *config;
    Gauden *g;
    int32_t n_sen;
    uint8_t *sen2cb;
    uint8_t ***mixw;  // [stream][density][senone]
    void *sendump_mmap;
    uint8_t *mixw_cb;
    int16_t max_topn, ds_ratio;
    FastEval *hist, *f;
    int n_fast_hist;
    void *lmath_8b;  // its first field is the log-add table's pointer
    void *lmath;
};
struct DecoderHead {
    void *config;
    int refcount;
    void *acmod;
};
struct AcmodHead {
    void *config, *lmath, *strings, *fe, *fcb, *mdef, *tmat;
    PsMgau *mgau;
};

struct HookModel {  // the Gaussians in the scorer's layout (core/ptm_scores.py keeps them alive)
    const float *mean_t = nullptr, *prec_t = nullptr, *det = nullptr;
    int n_mgau = 0, n_feat = 0, veclen = 0, n_density = 0;
};
HookModel g_model;
PsMgauFuncs g_funcs;  // the model's function table with the scoring step replaced (one model kind per process)
bool g_funcs_set = false;
std::mutex g_hook_lock;

constexpr int32_t kWorstScore = (int32_t)0xE0000000;

inline bool bit(const uint32_t *v, int b) { return (v[b / 32] >> (b & 31)) & 1u; }

// Every density of codebook ``m``'s stream ``f`` for observation ``z`` (as score_frame computes them).
inline void all_densities(const HookModel &M, int m, int f, const float *z, float *d) {
    const size_t mf = (size_t)m * M.n_feat + f;
    densities(z, M.mean_t + mf * M.veclen * M.n_density, M.prec_t + mf * M.veclen * M.n_density,
              M.det + mf * M.n_density, M.veclen, M.n_density, d);
}

// Only the densities ``kept`` (the previous frame's best) of a codebook no senone in play uses, as the decoder
// scores those again.
inline void kept_densities(const HookModel &M, int m, int f, const float *z, const Kept *kept, int topn, float *d) {
    const size_t mf = (size_t)m * M.n_feat + f;
    const int nd = M.n_density;
    const float *mu = M.mean_t + mf * M.veclen * nd;
    const float *pr = M.prec_t + mf * M.veclen * nd;
    for (int i = 0; i < topn; ++i) {
        const int c = kept[i].cw;
        float v = M.det[mf * nd + c];
        for (int j = 0; j < M.veclen; ++j) {
            const float diff = z[j] - mu[(size_t)j * nd + c];
            const float sq = diff * diff;
            const float term = sq * pr[(size_t)j * nd + c];
            v = v - term;
        }
        d[c] = v;
    }
}

}  // namespace

// The replacement scoring step (the decoder calls it through the model's function table): the scores of the
// senones in ``active`` (deltas, as the decoder lists them; every senone with ``compallsen``) for ``frame``,
// written into ``senscr`` (one int16 per senone of the model, the best 0).
FP_EXPORT FP_WIDEST int fp_ptm_frame_eval(void *mgau, int16_t *senscr, uint8_t *active, int32_t n_active,
                                          float **featbuf, int32_t frame, int32_t compallsen) {
    Ptm *s = static_cast<Ptm *>(mgau);
    const HookModel &M = g_model;
    const int nm = M.n_mgau, nf = M.n_feat, topn = s->max_topn;
    const int slot = frame % s->n_fast_hist;
    s->f = s->hist + slot;
    Kept *kept = s->f->topn[0][0];
    uint32_t *play = s->f->mgau_active;
    const int words = (nm + 31) / 32;
    if (frame >= s->base.frame_idx) {  // a new frame: its best densities from the previous frame's
        const FastEval *last = slot == 0 ? s->hist + s->n_fast_hist - 1 : s->hist + slot - 1;
        std::memcpy(kept, last->topn[0][0], sizeof(Kept) * nm * nf * topn);
        if (compallsen) {
            std::memset(play, 0xff, sizeof(uint32_t) * words);
        } else {
            std::memset(play, 0, sizeof(uint32_t) * words);
            for (int32_t i = 0, sen = 0; i < n_active; ++i) {
                sen += active[i];
                const int cb = s->sen2cb[sen];
                play[cb / 32] |= 1u << (cb & 31);
            }
        }
        float d[kMaxDensity];
        for (int m = 0; m < nm; ++m) {
            const bool on = bit(play, m);
            for (int f = 0; f < nf; ++f) {
                Kept *k = kept + ((size_t)m * nf + f) * topn;
                if (on)
                    all_densities(M, m, f, featbuf[f], d);
                else
                    kept_densities(M, m, f, featbuf[f], k, topn, d);
                keep_best(d, M.n_density, topn, k, on);
            }
        }
        for (int f = 0; f < nf; ++f) {  // normalised per stream over the codebooks in play, then clamped
            int32_t norm = kWorstScore;
            for (int m = 0; m < nm; ++m)
                if (bit(play, m) && norm < (kept[((size_t)m * nf + f) * topn].score >> kShift))
                    norm = kept[((size_t)m * nf + f) * topn].score >> kShift;
            for (int m = 0; m < nm; ++m) {
                if (!bit(play, m)) continue;
                Kept *k = kept + ((size_t)m * nf + f) * topn;
                for (int j = 0; j < topn; ++j) {
                    int32_t v = -((k[j].score >> kShift) - norm);
                    k[j].score = v > kMaxNegAscr ? kMaxNegAscr : v;
                }
            }
        }
    }
    const uint8_t *table = *static_cast<uint8_t **>(s->lmath_8b);
    std::memset(senscr, 0, sizeof(int16_t) * s->n_sen);
    const int32_t n = compallsen ? s->n_sen : n_active;
    int32_t best = 0x7fffffff;
    for (int32_t i = 0, sen = 0; i < n; ++i) {
        sen = compallsen ? i : sen + active[i];
        const int cb = s->sen2cb[sen];
        Kept *kb = kept + (size_t)cb * nf * topn;
        if (!bit(play, cb))  // a past frame's codebook that was not in play then
            for (int j = 0; j < nf * topn; ++j) kb[j].score = kMaxNegAscr;
        int32_t ascore = 0;
        for (int f = 0; f < nf; ++f) {
            const Kept *k = kb + (size_t)f * topn;
            int32_t den = 0;
            for (int j = 0; j < topn; ++j) {
                const int32_t v = s->mixw[f][k[j].cw][sen] + k[j].score;
                if (j == 0) {
                    den = v;
                } else {  // the decoder's log-add over its own table
                    den = den > v ? v - table[den - v] : den - table[v - den];
                }
            }
            ascore += den;
        }
        if (ascore < best) best = ascore;
        senscr[sen] = (int16_t)ascore;
    }
    for (int32_t i = 0; i < s->n_sen; ++i) senscr[i] = (int16_t)(senscr[i] - best);
    return 0;
}

// Puts fp_ptm_frame_eval in place of the scoring step of decoder ``ps`` (a ps_decoder_t*), whose model must be the
// phonetically-tied one whose Gaussians are given (the scorer's layout, as fp_ptm_senones takes them): the
// decoder's own means, precisions and normalisers are compared with them, value for value, and its sizes and
// settings checked (one density search per frame, unclustered weights). Returns 0 when the decoder now scores
// here, or a negative number when it was left as it was: -1 sizes, -2 not a phonetically-tied model, -3 another
// model's numbers, -4 settings not reproduced, -5 another model already hooked in this process.
FP_EXPORT int fp_ptm_hook(void *ps, const float *mean_t, const float *prec_t, const float *det, int n_mgau,
                          int n_feat, int veclen, int n_density) {
    if (!ps || !sizes_ok(n_mgau, n_feat, n_density, 1)) return -1;
    const AcmodHead *acmod = static_cast<const AcmodHead *>(static_cast<const DecoderHead *>(ps)->acmod);
    if (!acmod || !acmod->mgau || !acmod->mgau->vt) return -2;
    PsMgau *base = acmod->mgau;
    const bool ours = base->vt == &g_funcs;
    if (!ours && (!base->vt->name || std::strcmp(base->vt->name, "ptm") != 0)) return -2;
    Ptm *s = reinterpret_cast<Ptm *>(base);
    const Gauden *g = s->g;
    if (!g || g->n_mgau != n_mgau || g->n_feat != n_feat || g->n_density != n_density) return -3;
    for (int f = 0; f < n_feat; ++f)
        if (g->featlen[f] != veclen) return -3;
    if (s->ds_ratio != 1 || s->mixw_cb || s->max_topn < 1 || s->max_topn > n_density || s->n_fast_hist < 1 ||
        s->n_sen < 1 || !s->lmath_8b)
        return -4;
    for (int m = 0; m < n_mgau; ++m)
        for (int f = 0; f < n_feat; ++f) {
            const size_t mf = (size_t)m * n_feat + f;
            const float *mu = g->mean[m][f][0], *va = g->var[m][f][0], *de = g->det[m][f];
            for (int c = 0; c < n_density; ++c) {
                if (std::memcmp(&de[c], &det[mf * n_density + c], sizeof(float)) != 0) return -3;
                for (int j = 0; j < veclen; ++j) {
                    const size_t t = (mf * veclen + j) * n_density + c;
                    if (std::memcmp(&mu[c * veclen + j], &mean_t[t], sizeof(float)) != 0 ||
                        std::memcmp(&va[c * veclen + j], &prec_t[t], sizeof(float)) != 0)
                        return -3;
                }
            }
        }
    // The first hook sets the model and the table for the process; later ones (other decoders, other threads) only
    // check that theirs are the same, so a decoder already scoring here never sees them change.
    std::lock_guard<std::mutex> guard(g_hook_lock);
    if (g_model.mean_t && (g_model.mean_t != mean_t || g_model.prec_t != prec_t || g_model.det != det)) return -5;
    if (ours) return 0;
    if (g_funcs_set && (g_funcs.free_fn != base->vt->free_fn || g_funcs.transform != base->vt->transform))
        return -5;
    if (!g_model.mean_t) g_model = HookModel{mean_t, prec_t, det, n_mgau, n_feat, veclen, n_density};
    if (!g_funcs_set) {
        g_funcs = *base->vt;
        g_funcs.frame_eval = fp_ptm_frame_eval;
        g_funcs_set = true;
    }
    base->vt = &g_funcs;
    return 0;
}
