// Counter-based random numbers of the IAB model: a bit-exact port of bridge/model/rng.py.
#ifndef IAB_RNG_H
#define IAB_RNG_H

#include <cstdint>
#include <initializer_list>

namespace ns3
{
namespace iab
{

/// Streams: one per kind of randomness (the same numbers as bridge/model/rng.py).
enum IabRngStream : int64_t
{
    STREAM_ARRIVALS = 1,
    STREAM_ONOFF = 2,
    STREAM_FADING = 3,
    STREAM_SHADOW = 4,
    STREAM_LOS = 5,
    STREAM_BLOCK = 6,
    STREAM_MOBILITY = 7,
    STREAM_INCUMBENT = 8,
    STREAM_POLICY = 9,
    STREAM_EXTERNAL = 10,   ///< per frame: is the external interferer on
    STREAM_SENSING = 11,    ///< per (frame, channel): is a busy incumbent missed
    STREAM_DEPLOYMENT = 12, ///< per deployment (instance seed): the interferer's draws
};

/// SplitMix64 finaliser.
uint64_t Mix64(uint64_t x);

/// Per-episode 64-bit key from an integer seed (negative seeds wrap as in numpy).
uint64_t SeedKey(int64_t seed);

/**
 * Mix @p base with up to five integer keys into a uniform 64-bit word:
 * Mix64(base + sum_i keys[i] * KEY_MULT[i]) with wrap-around arithmetic.
 */
uint64_t HashKeys(uint64_t base, std::initializer_list<int64_t> keys);

/// 64-bit word -> uniform double in [0, 1) (53 bits).
double ToUniform(uint64_t word);

/// 64-bit word -> standard normal via the 2^14-point inverse-CDF table of the fallback.
double ToNormal(uint64_t word);

/// Inverse CDF of the standard normal (Wichura's AS241, as CPython's NormalDist.inv_cdf).
double NormalInvCdf(double p);

} // namespace iab
} // namespace ns3

#endif
