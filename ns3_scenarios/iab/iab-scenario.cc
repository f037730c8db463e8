// iab-scenario: the mmWave IAB network of iabmeta as an ns3-gym compatible scenario.
//
//   iab-scenario --instance=PATH [--simSeed=N] [--openGymPort=P | --openGymEndpoint=E]
//                [--selfTest] [--ns3::IabLinkGainModel::SubbandsPerChannel=4 ...]
//
// PATH is the JSON of bridge.instance.ScenarioInstance.to_json(); --simSeed is the episode
// seed (the fallback's per-episode seed: same traffic, on/off, incumbents, mobility and LOS
// draws) and the ns-3 run number. One agent step per frame; see iab-gym-env.h for the
// spaces, the info JSON and the episode-continuation extension. --selfTest builds the
// network, prints the beam self-test as JSON and exits without connecting; --pathLossReport
// prints every link's path loss (see IabLinkGainModel::GetPathLossReportJson) and exits;
// --externalReport prints the external interferer and its power at every receiver and exits.
#include "iab-external-interference.h"
#include "iab-gym-env.h"
#include "iab-scenario-instance.h"

#include "opengym-module.h"

#include "ns3/command-line.h"
#include "ns3/log.h"
#include "ns3/simulator.h"

#include <iostream>

using namespace ns3;

NS_LOG_COMPONENT_DEFINE("IabScenario");

int
main(int argc, char* argv[])
{
    OpenGymArguments gym;
    std::string instancePath;
    bool selfTest = false;
    bool pathLossReport = false;
    bool externalReport = false;
    CommandLine cmd(__FILE__);
    gym.AddToCommandLine(cmd);
    cmd.AddValue("instance", "scenario instance JSON written by bridge.instance", instancePath);
    cmd.AddValue("selfTest", "print the beam self-test as JSON and exit", selfTest);
    cmd.AddValue("pathLossReport",
                 "print the path loss of every (base station, receiver) pair at the start "
                 "positions (JSON, LOS and NLOS, no shadowing) and exit",
                 pathLossReport);
    cmd.AddValue("externalReport",
                 "print the external interferer (position, channel block) and its power at "
                 "every link receiver at the start positions (JSON) and exit",
                 externalReport);
    cmd.Parse(argc, argv);
    if (instancePath.empty())
    {
        std::cerr << "iab-scenario: --instance=PATH is required" << std::endl;
        return 2;
    }
    gym.ApplySeed();
    const IabScenarioInstance instance = IabScenarioInstance::FromFile(instancePath);

    if (externalReport)
    {
        std::cout << ExternalReportJson(instance) << std::endl;
        return 0;
    }
    if (pathLossReport)
    {
        // deterministic: only nodes and positions are needed, no 3GPP channels
        IabScenarioInstance plain = instance;
        plain.deterministic = true;
        auto gains = CreateObject<IabLinkGainModel>();
        gains->Install(plain);
        std::cout << gains->GetPathLossReportJson() << std::endl;
        gains->Dispose();
        Simulator::Destroy();
        return 0;
    }
    auto env = CreateObject<IabGymEnv>();
    env->Setup(instance, static_cast<int64_t>(gym.simSeed));
    if (selfTest)
    {
        std::cout << env->GetExtraInfo() << std::endl;
        env->Dispose();
        Simulator::Destroy();
        return 0;
    }
    env->SetOpenGymInterface(gym.CreateInterface());
    env->Start();
    Simulator::Run();
    env->NotifySimulationEnd();
    NS_LOG_INFO("simulated " << env->GetFramesSimulated() << " frames");
    Simulator::Destroy();
    env->Dispose();
    return 0;
}
