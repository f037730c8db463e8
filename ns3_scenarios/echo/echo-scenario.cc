// echo-scenario: an OpenGym scenario without physics, for bridge tests and benchmarks.
//
// Every step the observation is computed from the last action and the step counter, so a
// test can check the round trip exactly:
//   --mode=box     obs[i] = act[i % actSize] + step           (Box of --obsType)
//   --mode=nested  obs = {"echo": gain + step, "pair": (choice, [level, step]), "step": step}
//                  for the action (choice, {"gain": 3 x float64, "level": 1 x uint32})
// The reward is the sum of the action's entries; the info string is JSON
// {"step": k, "seed": simSeed, "rng": <U(0,1) draw from the ns-3 RNG, seeded by --simSeed>}.
// The episode ends after --steps steps, by game over (--endBy=gameover) or by the end of the
// simulation (--endBy=simend, final state sent by NotifySimulationEnd).
// --computeUs=N burns N microseconds of CPU per step, standing in for physics in benchmarks
// of parallel environments (0 by default: the bridge alone is measured).
// Misbehaviour for failure tests: --crashAtStep=N (exit code 3), --hangAtStep=N (stops
// answering), --neverConnect (never opens the socket).
#include "opengym-module.h"

#include "ns3/command-line.h"
#include "ns3/log.h"
#include "ns3/nstime.h"
#include "ns3/random-variable-stream.h"
#include "ns3/simulator.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

using namespace ns3;

NS_LOG_COMPONENT_DEFINE("EchoScenario");

namespace
{

struct EchoConfig
{
    std::string mode{"box"};
    uint32_t obsSize{4};
    uint32_t actSize{4};
    std::string obsType{"float32"};
    uint32_t steps{100};
    uint32_t computeUs{0};
    Time stepTime{MilliSeconds(100)};
    std::string endBy{"gameover"};
    int64_t crashAtStep{-1};
    int64_t hangAtStep{-1};
    bool neverConnect{false};
};

/// Sleep until the parent process is gone or @p timeoutS elapsed, then exit with code 4.
[[noreturn]] void
HangUntilOrphaned(double timeoutS, const char* why)
{
    std::cerr << "echo-scenario: " << why << "; hanging" << std::endl;
    const pid_t parent = getppid();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutS);
    while (getppid() == parent && std::chrono::steady_clock::now() < deadline)
    {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::exit(OPENGYM_EXIT_PEER_GONE);
}

class EchoGymEnv : public OpenGymEnv
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("ns3::EchoGymEnv").SetParent<OpenGymEnv>().SetGroupName("OpenGym");
        return tid;
    }

    EchoGymEnv(const EchoConfig& config, uint64_t seed, double timeoutS)
        : m_config(config),
          m_seed(seed),
          m_timeoutS(timeoutS),
          m_boxAction(config.actSize, 0.0),
          m_gain(3, 0.0),
          m_rng(CreateObject<UniformRandomVariable>())
    {
        m_dtype = OpenGymBoxSpace::ParseDtype(config.obsType);
    }

    Ptr<OpenGymSpace> GetObservationSpace() override
    {
        if (m_config.mode == "nested")
        {
            auto pair = CreateObject<OpenGymTupleSpace>();
            pair->Add(CreateObject<OpenGymDiscreteSpace>(4));
            pair->Add(CreateObject<OpenGymBoxSpace>(
                0.0F, 1e9F, std::vector<uint32_t>{2}, ns3opengym::INT));
            auto space = CreateObject<OpenGymDictSpace>();
            space->Add("echo",
                       CreateObject<OpenGymBoxSpace>(
                           -1e9F, 1e9F, std::vector<uint32_t>{3}, ns3opengym::DOUBLE));
            space->Add("pair", pair);
            space->Add("step", CreateObject<OpenGymDiscreteSpace>(m_config.steps + 1));
            return space;
        }
        const bool isUnsigned = m_dtype == ns3opengym::UINT;
        return CreateObject<OpenGymBoxSpace>(isUnsigned ? 0.0F : -1e9F,
                                             1e9F,
                                             std::vector<uint32_t>{m_config.obsSize},
                                             m_dtype);
    }

    Ptr<OpenGymSpace> GetActionSpace() override
    {
        if (m_config.mode == "nested")
        {
            auto params = CreateObject<OpenGymDictSpace>();
            params->Add("gain",
                        CreateObject<OpenGymBoxSpace>(
                            -100.0F, 100.0F, std::vector<uint32_t>{3}, ns3opengym::DOUBLE));
            params->Add("level",
                        CreateObject<OpenGymBoxSpace>(
                            0.0F, 100.0F, std::vector<uint32_t>{1}, ns3opengym::UINT));
            auto space = CreateObject<OpenGymTupleSpace>();
            space->Add(CreateObject<OpenGymDiscreteSpace>(4));
            space->Add(params);
            return space;
        }
        const bool isUnsigned = m_dtype == ns3opengym::UINT;
        return CreateObject<OpenGymBoxSpace>(isUnsigned ? 0.0F : -100.0F,
                                             100.0F,
                                             std::vector<uint32_t>{m_config.actSize},
                                             m_dtype);
    }

    bool GetGameOver() override
    {
        return m_config.endBy == "gameover" && m_step >= m_config.steps;
    }

    Ptr<OpenGymDataContainer> GetObservation() override
    {
        if (m_config.mode == "nested")
        {
            auto echo = CreateObject<OpenGymBoxContainer<double>>(std::vector<uint32_t>{3});
            for (double gain : m_gain)
            {
                echo->AddValue(gain + m_step);
            }
            auto choice = CreateObject<OpenGymDiscreteContainer>(4);
            choice->SetValue(m_choice);
            auto counters = CreateObject<OpenGymBoxContainer<int32_t>>(std::vector<uint32_t>{2});
            counters->AddValue(static_cast<int32_t>(m_level));
            counters->AddValue(static_cast<int32_t>(m_step));
            auto pair = CreateObject<OpenGymTupleContainer>();
            pair->Add(choice);
            pair->Add(counters);
            auto step = CreateObject<OpenGymDiscreteContainer>(m_config.steps + 1);
            step->SetValue(static_cast<int32_t>(m_step));
            auto obs = CreateObject<OpenGymDictContainer>();
            obs->Add("echo", echo);
            obs->Add("pair", pair);
            obs->Add("step", step);
            return obs;
        }
        switch (m_dtype)
        {
        case ns3opengym::INT:
            return BoxObservation<int32_t>();
        case ns3opengym::UINT:
            return BoxObservation<uint32_t>();
        case ns3opengym::DOUBLE:
            return BoxObservation<double>();
        default:
            return BoxObservation<float>();
        }
    }

    float GetReward() override
    {
        if (m_config.mode == "nested")
        {
            double sum = m_choice + static_cast<double>(m_level);
            for (double gain : m_gain)
            {
                sum += gain;
            }
            return static_cast<float>(sum);
        }
        double sum = 0;
        for (double value : m_boxAction)
        {
            sum += value;
        }
        return static_cast<float>(sum);
    }

    std::string GetExtraInfo() override
    {
        std::ostringstream info;
        info.precision(17);
        info << "{\"step\": " << m_step << ", \"seed\": " << m_seed
             << ", \"rng\": " << m_rng->GetValue() << "}";
        return info.str();
    }

    bool ExecuteActions(Ptr<OpenGymDataContainer> action) override
    {
        if (m_config.mode == "nested")
        {
            auto tuple = DynamicCast<OpenGymTupleContainer>(action);
            auto choice = tuple ? DynamicCast<OpenGymDiscreteContainer>(tuple->Get(0)) : nullptr;
            auto params = tuple ? DynamicCast<OpenGymDictContainer>(tuple->Get(1)) : nullptr;
            auto gain = params ? DynamicCast<OpenGymBoxContainer<double>>(params->Get("gain"))
                               : nullptr;
            auto level = params ? DynamicCast<OpenGymBoxContainer<uint32_t>>(params->Get("level"))
                                : nullptr;
            if (!choice || !gain || !level || gain->GetData().size() != 3 ||
                level->GetData().size() != 1)
            {
                std::cerr << "echo-scenario: action " << action
                          << " does not match Tuple(Discrete(4), Dict(gain, level))" << std::endl;
                return false;
            }
            m_choice = choice->GetValue();
            m_gain = gain->GetData();
            m_level = level->GetValue(0);
            return true;
        }
        switch (m_dtype)
        {
        case ns3opengym::INT:
            return ReadBoxAction<int32_t>(action);
        case ns3opengym::UINT:
            return ReadBoxAction<uint32_t>(action);
        case ns3opengym::DOUBLE:
            return ReadBoxAction<double>(action);
        default:
            return ReadBoxAction<float>(action);
        }
    }

    /// One agent step: notify Python, then schedule the next step.
    void Step()
    {
        if (static_cast<int64_t>(m_step) == m_config.crashAtStep)
        {
            std::cerr << "echo-scenario: crashing at step " << m_step << " as requested"
                      << std::endl;
            std::exit(3);
        }
        if (static_cast<int64_t>(m_step) == m_config.hangAtStep)
        {
            HangUntilOrphaned(m_timeoutS, "hangAtStep reached");
        }
        if (m_config.endBy == "simend" && m_step >= m_config.steps)
        {
            Simulator::Stop();
            return;
        }
        BurnCpu();
        Notify();
        if (m_openGymInterface->IsStopRequested() || GetGameOver())
        {
            return;
        }
        ++m_step;
        Simulator::Schedule(m_config.stepTime, &EchoGymEnv::Step, this);
    }

  private:
    /// Busy-wait --computeUs microseconds (a sleep would not occupy the CPU like physics does).
    void BurnCpu() const
    {
        if (m_config.computeUs == 0)
        {
            return;
        }
        const auto until =
            std::chrono::steady_clock::now() + std::chrono::microseconds(m_config.computeUs);
        while (std::chrono::steady_clock::now() < until)
        {
        }
    }

    template <typename T>
    Ptr<OpenGymDataContainer> BoxObservation() const
    {
        auto obs = CreateObject<OpenGymBoxContainer<T>>(std::vector<uint32_t>{m_config.obsSize});
        auto& data = obs->GetMutableData();
        data.resize(m_config.obsSize);
        for (uint32_t i = 0; i < m_config.obsSize; ++i)
        {
            data[i] = static_cast<T>(m_boxAction[i % m_config.actSize] + m_step);
        }
        return obs;
    }

    template <typename T>
    bool ReadBoxAction(Ptr<OpenGymDataContainer> action)
    {
        auto box = DynamicCast<OpenGymBoxContainer<T>>(action);
        if (!box || box->GetData().size() != m_config.actSize)
        {
            std::cerr << "echo-scenario: action " << action << " is not a Box of "
                      << m_config.actSize << " " << m_config.obsType << std::endl;
            return false;
        }
        const auto& data = box->GetData();
        for (uint32_t i = 0; i < m_config.actSize; ++i)
        {
            m_boxAction[i] = static_cast<double>(data[i]);
        }
        return true;
    }

    EchoConfig m_config;
    uint64_t m_seed;
    double m_timeoutS;
    ns3opengym::Dtype m_dtype{ns3opengym::FLOAT};
    uint32_t m_step{0};
    std::vector<double> m_boxAction;
    int32_t m_choice{0};
    std::vector<double> m_gain;
    uint32_t m_level{0};
    Ptr<UniformRandomVariable> m_rng;
};

} // namespace

int
main(int argc, char* argv[])
{
    OpenGymArguments gym;
    EchoConfig config;
    CommandLine cmd(__FILE__);
    gym.AddToCommandLine(cmd);
    cmd.AddValue("mode", "box or nested (Dict/Tuple/Discrete spaces)", config.mode);
    cmd.AddValue("obsSize", "number of observation entries (box mode)", config.obsSize);
    cmd.AddValue("actSize", "number of action entries (box mode)", config.actSize);
    cmd.AddValue("obsType", "int32, uint32, float32 or float64 (box mode)", config.obsType);
    cmd.AddValue("steps", "agent steps per episode", config.steps);
    cmd.AddValue("stepTime", "simulated time between agent steps", config.stepTime);
    cmd.AddValue("computeUs", "CPU time burnt per step in microseconds (stand-in for physics)",
                 config.computeUs);
    cmd.AddValue("endBy", "gameover (GameOver state) or simend (SimulationEnd state)", config.endBy);
    cmd.AddValue("crashAtStep", "exit with code 3 at this step (-1: never)", config.crashAtStep);
    cmd.AddValue("hangAtStep", "stop answering at this step (-1: never)", config.hangAtStep);
    cmd.AddValue("neverConnect", "never open the socket (for timeout tests)", config.neverConnect);
    cmd.Parse(argc, argv);

    if (config.mode != "box" && config.mode != "nested")
    {
        std::cerr << "echo-scenario: --mode=" << config.mode << ", expected box or nested"
                  << std::endl;
        return 2;
    }
    if (config.endBy != "gameover" && config.endBy != "simend")
    {
        std::cerr << "echo-scenario: --endBy=" << config.endBy << ", expected gameover or simend"
                  << std::endl;
        return 2;
    }
    if (config.obsSize == 0 || config.actSize == 0)
    {
        std::cerr << "echo-scenario: --obsSize=" << config.obsSize << " --actSize="
                  << config.actSize << ", expected both >= 1" << std::endl;
        return 2;
    }
    if (config.obsType != "int32" && config.obsType != "uint32" && config.obsType != "float32" &&
        config.obsType != "float64")
    {
        std::cerr << "echo-scenario: --obsType=" << config.obsType
                  << ", expected int32, uint32, float32 or float64" << std::endl;
        return 2;
    }
    gym.ApplySeed();
    if (config.neverConnect)
    {
        HangUntilOrphaned(gym.openGymTimeoutS, "--neverConnect given");
    }

    NS_LOG_INFO("echo-scenario on " << gym.GetEndpoint() << ", seed " << gym.simSeed);
    auto env = CreateObject<EchoGymEnv>(config, gym.simSeed, gym.openGymTimeoutS);
    env->SetOpenGymInterface(gym.CreateInterface());
    Simulator::ScheduleNow(&EchoGymEnv::Step, env);
    Simulator::Run();
    env->NotifySimulationEnd();
    Simulator::Destroy();
    env->Dispose();
    return 0;
}
