// Counter-based random numbers of the IAB model: a bit-exact port of bridge/model/rng.py.
#include "iab-rng.h"

#include <array>
#include <cmath>
#include <vector>

namespace ns3
{
namespace iab
{

namespace
{
constexpr uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t M1 = 0xBF58476D1CE4E5B9ULL;
constexpr uint64_t M2 = 0x94D049BB133111EBULL;
constexpr std::array<uint64_t, 5> KEY_MULT = {
    0xD6E8FEB86659FD93ULL,
    0xA0761D6478BD642FULL,
    0xE7037ED1A0B428DBULL,
    0x8EBC6AF09C88C6E3ULL,
    0x589965CC75374CC3ULL,
};
constexpr int NORMAL_BITS = 14;

const std::vector<double>&
NormalTable()
{
    static const std::vector<double> table = [] {
        std::vector<double> t(size_t{1} << NORMAL_BITS);
        for (size_t i = 0; i < t.size(); ++i)
        {
            t[i] = NormalInvCdf((static_cast<double>(i) + 0.5) /
                                static_cast<double>(size_t{1} << NORMAL_BITS));
        }
        return t;
    }();
    return table;
}
} // namespace

uint64_t
Mix64(uint64_t x)
{
    x += GOLDEN;
    x ^= x >> 30;
    x *= M1;
    x ^= x >> 27;
    x *= M2;
    x ^= x >> 31;
    return x;
}

uint64_t
SeedKey(int64_t seed)
{
    return Mix64(static_cast<uint64_t>(seed));
}

uint64_t
HashKeys(uint64_t base, std::initializer_list<int64_t> keys)
{
    uint64_t acc = base;
    size_t i = 0;
    for (int64_t key : keys)
    {
        acc += static_cast<uint64_t>(key) * KEY_MULT[i++];
    }
    return Mix64(acc);
}

double
ToUniform(uint64_t word)
{
    return static_cast<double>(word >> 11) * (1.0 / 9007199254740992.0);
}

double
ToNormal(uint64_t word)
{
    return NormalTable()[word >> (64 - NORMAL_BITS)];
}

double
NormalInvCdf(double p)
{
    // The same rational approximations and evaluation order as CPython's
    // _normal_dist_inv_cdf, so that the fallback's table is reproduced to the last bit.
    const double q = p - 0.5;
    if (std::fabs(q) <= 0.425)
    {
        const double r = 0.180625 - q * q;
        const double num =
            (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r +
                  6.7265770927008700853e+4) *
                     r +
                 4.5921953931549871457e+4) *
                    r +
                1.3731693765509461125e+4) *
                   r +
               1.9715909503065514427e+3) *
                  r +
              1.3314166789178437745e+2) *
                 r +
             3.3871328727963666080e+0) *
            q;
        const double den =
            (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r +
                  3.9307895800092710610e+4) *
                     r +
                 2.1213794301586595867e+4) *
                    r +
                5.3941960214247511077e+3) *
                   r +
               6.8718700749205790830e+2) *
                  r +
              4.2313330701600911252e+1) *
                 r +
             1.0);
        return num / den;
    }
    double r = (q <= 0.0) ? p : 1.0 - p;
    r = std::sqrt(-std::log(r));
    double num;
    double den;
    if (r <= 5.0)
    {
        r = r - 1.6;
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r +
                    2.41780725177450611770e-1) *
                       r +
                   1.27045825245236838258e+0) *
                      r +
                  3.64784832476320460504e+0) *
                     r +
                 5.76949722146069140550e+0) *
                    r +
                4.63033784615654529590e+0) *
                   r +
               1.42343711074968357734e+0);
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r +
                    1.51986665636164571966e-2) *
                       r +
                   1.48103976427480074590e-1) *
                      r +
                  6.89767334985100004550e-1) *
                     r +
                 1.67638483018380384940e+0) *
                    r +
                2.05319162663775882187e+0) *
                   r +
               1.0);
    }
    else
    {
        r = r - 5.0;
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r +
                    1.24266094738807843860e-3) *
                       r +
                   2.65321895265761230930e-2) *
                      r +
                  2.96560571828504891230e-1) *
                     r +
                 1.78482653991729133580e+0) *
                    r +
                5.46378491116411436990e+0) *
                   r +
               6.65790464350110377720e+0);
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r +
                    1.84631831751005468180e-5) *
                       r +
                   7.86869131145613259100e-4) *
                      r +
                  1.48753612908506148525e-2) *
                     r +
                 1.36929880922735805310e-1) *
                    r +
                5.99832206555887937690e-1) *
                   r +
               1.0);
    }
    double x = num / den;
    if (q < 0.0)
    {
        x = -x;
    }
    return x;
}

} // namespace iab
} // namespace ns3
