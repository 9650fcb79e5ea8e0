#pragma once
// Branch-free exp, log, log1p, the activations built on them (sigmoid, silu, tanh, softplus) and
// exprel(x) = (e^x - 1) / x, written so that GCC -O3 -march=native vectorizes a plain loop that
// calls them (the libm functions are calls and do not, without -ffast-math). Accuracy: within ~2
// ulp of the C library.
//
// exp(x) = 2^n * exp(r),  n = round(x / ln2),  r = x - n ln2 in [-ln2/2, ln2/2]
//   - n is rounded with the "magic number" trick (adding 1.5 * 2^mantissa_bits rounds to an integer
//     in the low mantissa bits), so no float->int conversion is needed;
//   - r is formed with a two-constant (Cody-Waite) split of ln2: n * ln2_hi is exact because
//     ln2_hi has trailing zero bits, so the only rounding is in the tiny n * ln2_lo term;
//   - exp(r) is a polynomial (float: Cephes minimax; double: Taylor to degree 13, error < 1e-17);
//   - 2^n is written into the exponent bits. It is applied as two factors 2^n1 * 2^n2 so that
//     results near overflow (n = 128 for float) and in the subnormal range come out right.
// Inputs are clamped first (a NaN passes both comparisons unchanged, so NaN propagates): above the
// clamp every result is inf, below it every result is 0, so exp(inf) = inf and exp(-inf) = 0.
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

// Forced inline: these are only fast inside a vectorized loop, and GCC's inlining budget otherwise
// leaves the larger ones (double exp) as out-of-line scalar calls in big translation units.
#define MG_FAST_MATH_INLINE inline __attribute__((always_inline))

namespace mg::cpu {

namespace fast_math_detail {

// 2^k for an integer-valued k (float k in [-126, 127]; double k in [-1022, 1023]): adding the
// magic number puts k + bias in the low mantissa bits; shifting them up into the exponent field
// drops everything else.
MG_FAST_MATH_INLINE float exp2_int(float k) {
  constexpr float magic = 12582912.0f;  // 1.5 * 2^23
  uint32_t bits = std::bit_cast<uint32_t>(k + (magic + 127.0f)) << 23;
  return std::bit_cast<float>(bits);
}
MG_FAST_MATH_INLINE double exp2_int(double k) {
  constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
  uint64_t bits = std::bit_cast<uint64_t>(k + (magic + 1023.0)) << 52;
  return std::bit_cast<double>(bits);
}

// round(v) for |v| < 2^22 (float) / 2^51 (double), in round-to-nearest-even.
MG_FAST_MATH_INLINE float round_magic(float v) {
  constexpr float magic = 12582912.0f;
  return (v + magic) - magic;
}
MG_FAST_MATH_INLINE double round_magic(double v) {
  constexpr double magic = 6755399441055744.0;
  return (v + magic) - magic;
}

}  // namespace fast_math_detail

MG_FAST_MATH_INLINE float fast_exp(float x) {
  using namespace fast_math_detail;
  // exp(89) > FLT_MAX and exp(-110) < half the smallest subnormal, so clamping there changes nothing.
  x = x > 89.0f ? 89.0f : x;
  x = x < -110.0f ? -110.0f : x;
  float n = round_magic(x * 1.44269504088896341f);  // x / ln2
  float r = x - n * 0.693359375f;                   // ln2_hi (exact product: 9 significant bits)
  r = r - n * -2.12194440e-4f;                      // ln2_lo = ln2 - ln2_hi
  // exp(r) = 1 + r + r^2 P(r) (Cephes expf coefficients, minimax on [-ln2/2, ln2/2])
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  float n1 = round_magic(n * 0.5f);  // n = n1 + n2 with both halves in the normal exponent range
  return p * exp2_int(n1) * exp2_int(n - n1);
}

MG_FAST_MATH_INLINE double fast_exp(double x) {
  using namespace fast_math_detail;
  // exp(710) > DBL_MAX and exp(-760) < half the smallest subnormal.
  x = x > 710.0 ? 710.0 : x;
  x = x < -760.0 ? -760.0 : x;
  double n = round_magic(x * 1.4426950408889634074);
  double r = x - n * 6.93147180369123816490e-01;  // ln2_hi (fdlibm: low 32 bits zero)
  r = r - n * 1.90821492927058770002e-10;         // ln2_lo
  // Taylor series of exp(r) to r^13 / 13!, Horner form; |r| <= 0.35 so the tail is < 1e-17.
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * (r * r) + r + 1.0;
  double n1 = round_magic(n * 0.5);
  return p * exp2_int(n1) * exp2_int(n - n1);
}

// log(x) = k ln2 + log(m),  x = 2^k m with m in [sqrt(1/2), sqrt(2)): k and m are read from the
// bits (subnormals are first scaled by 2^23 / 2^54), then log(m) is a polynomial in f = m - 1 (float:
// Cephes logf; double: fdlibm's log, in s = f / (2 + f)). Special values are patched in by selects:
// log(0) = -inf, log(x < 0) = nan, log(inf) = inf, nan stays nan.
MG_FAST_MATH_INLINE float fast_log(float x) {
  bool subnormal = x < 1.17549435e-38f;
  float xs = subnormal ? x * 8388608.0f : x;  // 2^23
  uint32_t bits = std::bit_cast<uint32_t>(xs);
  // The exponent field as a float via 2^23 + field - 2^23: an int -> float conversion here would
  // count as a possible trap and stop GCC from if-converting (and so vectorizing) the loop.
  float k = std::bit_cast<float>((bits >> 23) | 0x4b000000u) - 8388608.0f;
  k = k - 127.0f - (subnormal ? 23.0f : 0.0f);
  float m = std::bit_cast<float>((bits & 0x007fffffu) | 0x3f800000u);  // in [1, 2)
  bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  k = high ? k + 1.0f : k;
  float f = m - 1.0f, z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = p * f * z + k * -2.12194440e-4f - 0.5f * z;  // k * ln2_lo folded in early, as Cephes does
  float r = (f + y) + k * 0.693359375f;                  // + k * ln2_hi (exact)
  constexpr float inf = std::numeric_limits<float>::infinity();
  r = x < 0.0f ? std::numeric_limits<float>::quiet_NaN() : r;
  r = x == 0.0f ? -inf : r;
  r = x == inf ? inf : r;
  return x != x ? x : r;
}

MG_FAST_MATH_INLINE double fast_log(double x) {
  bool subnormal = x < 2.2250738585072014e-308;
  double xs = subnormal ? x * 18014398509481984.0 : x;  // 2^54
  uint64_t bits = std::bit_cast<uint64_t>(xs);
  // The exponent field as a double, as in the float version (and int64 -> double is not in AVX2).
  double k = std::bit_cast<double>((bits >> 52) | 0x4330000000000000ull) - 4503599627370496.0;
  k = k - 1023.0 - (subnormal ? 54.0 : 0.0);
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  // in [1, 2)
  bool high = m > 1.4142135623730951;
  m = high ? m * 0.5 : m;
  k = high ? k + 1.0 : k;
  double f = m - 1.0, s = f / (2.0 + f), z = s * s, w = z * z;
  // fdlibm: log(1 + f) = f - f^2/2 + s (f^2/2 + R(z)), R(z) ~ 2z/3 + 2z^2/5 + ... in even/odd halves
  double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  double t2 = z * (6.666666666666735130e-01 +
                   w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  double R = t2 + t1, hfsq = 0.5 * f * f;
  double r = k * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + R) + k * 1.90821492927058770002e-10)) - f);
  constexpr double inf = std::numeric_limits<double>::infinity();
  r = x < 0.0 ? std::numeric_limits<double>::quiet_NaN() : r;
  r = x == 0.0 ? -inf : r;
  r = x == inf ? inf : r;
  return x != x ? x : r;
}

// log1p(x) = log(u) + (x - (u - 1)) / u with u = 1 + x: the second term puts back what rounding
// 1 + x lost (exact to first order), so tiny x give x and not 0.
template <class T>
MG_FAST_MATH_INLINE T fast_log1p(T x) {
  T u = T(1) + x;
  T r = fast_log(u) + (x - (u - T(1))) / u;
  r = u == std::numeric_limits<T>::infinity() ? u : r;     // inf - inf in the correction
  return u == T(0) ? -std::numeric_limits<T>::infinity() : r;  // x = -1
}

// sigmoid(x) = 1 / (1 + exp(-x)); saturates cleanly: exp(-x) = inf gives 0, 0 gives 1.
template <class T>
MG_FAST_MATH_INLINE T fast_sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

// silu(x) = x * sigmoid(x)
template <class T>
MG_FAST_MATH_INLINE T fast_silu(T x) {
  return x / (T(1) + fast_exp(-x));
}

// tanh(x): for |x| >= 0.625, 1 - 2 / (exp(2|x|) + 1) with x's sign (exp(2|x|) = inf gives 1); below
// that the subtraction would cancel, so a Cephes odd polynomial (float) / rational (double) in x is
// used instead. Both branches are computed and one selected, which keeps the loop vectorizable.
MG_FAST_MATH_INLINE float fast_tanh(float x) {
  float a = std::fabs(x);
  float large = std::copysign(1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f), x);
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = std::copysign(p * z * x + x, x);  // copysign: tanh(-0) = -0
  return a < 0.625f ? small : large;
}
MG_FAST_MATH_INLINE double fast_tanh(double x) {
  double a = std::fabs(x);
  double large = std::copysign(1.0 - 2.0 / (fast_exp(2.0 * a) + 1.0), x);
  double z = x * x;
  double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3;
  double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3;
  double small = std::copysign(x + x * z * (p / q), x);
  return a < 0.625 ? small : large;
}

// softplus(x) = log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's
// rule; the default threshold 20 is where log1p(exp(20)) - 20 ~ 2e-9 drops below float precision).
template <class T>
MG_FAST_MATH_INLINE T fast_softplus(T x, T beta = T(1), T threshold = T(20)) {
  T bx = beta * x;
  return bx > threshold ? x : fast_log1p(fast_exp(bx)) / beta;
}

// exprel(x) = (e^x - 1) / x (the name follows scipy.special.exprel) and its derivative
// exprel'(x) = (e^x - exprel(x)) / x, given ex = e^x (the selective scan has it already: dA). The
// exact zero-order hold for B is B_bar = (e^(delta A) - 1) / A * B = delta exprel(delta A) B, which
// never divides by A (ops/discretize.h). Near 0 both closed forms cancel (and divide by ~0), so
// |x| < 0.5 uses the Taylor series instead:
//   exprel(x) = sum_k x^k / (k+1)!,   exprel'(x) = sum_k (k+1) x^k / (k+2)!
// 9 terms reach float precision there, 16 double (a truncation error of 0.5^16 / 17! ~ 4e-20); at
// |x| = 0.5 the closed form of exprel' loses about 2 bits. Both sides are computed and one is
// selected, so that a loop calling them vectorizes.
namespace fast_math_detail {

inline constexpr int kExprelTerms = 16;
constexpr std::array<double, kExprelTerms> exprel_coefficients(bool derivative) {
  std::array<double, kExprelTerms> c{};
  double factorial = derivative ? 2.0 : 1.0;  // (k+2)! or (k+1)! at k = 0
  for (int k = 0; k < kExprelTerms; ++k) {
    c[k] = (derivative ? k + 1 : 1) / factorial;
    factorial *= derivative ? k + 3 : k + 2;
  }
  return c;
}
inline constexpr auto kExprel = exprel_coefficients(false);
inline constexpr auto kExprelDerivative = exprel_coefficients(true);

// sum_k c[k] x^k in Horner form, over the terms T's precision needs.
template <class T>
MG_FAST_MATH_INLINE T exprel_series(const std::array<double, kExprelTerms>& c, T x) {
  constexpr int kTerms = sizeof(T) == 4 ? 9 : kExprelTerms;
  T p = T(c[kTerms - 1]);
  for (int k = kTerms - 2; k >= 0; --k) p = p * x + T(c[k]);
  return p;
}

}  // namespace fast_math_detail

template <class T>
MG_FAST_MATH_INLINE T exprel(T x, T ex) {
  bool small = std::abs(x) < T(0.5);
  T closed = (ex - T(1)) / (small ? T(1) : x);
  return small ? fast_math_detail::exprel_series(fast_math_detail::kExprel, x) : closed;
}
template <class T>
MG_FAST_MATH_INLINE T exprel_derivative(T x, T ex) {
  bool small = std::abs(x) < T(0.5);
  T closed = (ex - exprel(x, ex)) / (small ? T(1) : x);
  return small ? fast_math_detail::exprel_series(fast_math_detail::kExprelDerivative, x) : closed;
}
// The same where e^x is not at hand (off the hot paths): e^x from the C library.
template <class T>
inline T exprel(T x) { return exprel(x, std::exp(x)); }
template <class T>
inline T exprel_derivative(T x) { return exprel_derivative(x, std::exp(x)); }

}  // namespace mg::cpu
