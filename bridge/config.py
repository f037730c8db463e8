"""Typed, validated scenario configuration: the one source of truth for both backends.

Every parameter of the system model (docs/system-model.md) is a field here. A config is a tree of
frozen dataclasses; :func:`load_config` reads TOML or YAML, :func:`apply_overrides` takes
``section.field=value`` strings from a command line, and every constructor validates its fields,
raising :class:`ConfigError` that names the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import tomllib
import yaml


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of its allowed range."""


def _rng(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
         choices: tuple[Any, ...] | None = None, help: str = "") -> dict[str, Any]:
    return {"lo": lo, "hi": hi, "open_lo": open_lo, "choices": choices, "help": help}


def _f(default: Any, **meta: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=_rng(**meta))
    return field(default=default, metadata=_rng(**meta))


class _Section:
    """Mixin: validates every field against its metadata after construction."""

    _section_name = ""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            where = f"{self._section_name}.{f.name}" if self._section_name else f.name
            value = _coerce(where, value, hints[f.name])
            object.__setattr__(self, f.name, value)
            _check_range(where, value, f.metadata)
        self._validate()

    def _validate(self) -> None:  # cross-field checks
        return None


def _coerce(where: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return _build(hint, value, where)
        raise ConfigError(f"{where}: expected a table of fields, got {value!r}")
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}={value!r} is not allowed; expected one of {list(allowed)}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}={value!r} is not a boolean (true/false)")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}={value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}={value!r} is not an integer")
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}={value!r} is not a number")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}={value!r} is not a number") from None
        if not math.isfinite(out):
            raise ConfigError(f"{where}={value!r} is not a finite number")
        return out
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}={value!r} is not a string")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("x", ",").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} is not a list")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}={list(value)!r} must have {len(args)} elements")
        return tuple(_coerce(f"{where}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    return value


def _check_range(where: str, value: Any, meta: Any) -> None:
    if not meta:
        return
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}={value!r} is not allowed; expected one of {list(choices)}")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        too_low = lo is not None and (v <= lo if meta.get("open_lo") else v < lo)
        too_high = hi is not None and v > hi
        if too_low or too_high:
            left = "(" if meta.get("open_lo") else "["
            raise ConfigError(
                f"{where}={value!r} is out of range; allowed {left}{lo}, {hi}]"
            )


def _build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown field {prefix}{unknown[0]}; known fields: {sorted(known)}"
        )
    return cls(**data)


@dataclass(frozen=True)
class TopologyConfig(_Section):
    """Where the nodes are and who serves whom."""

    _section_name = "topology"
    area_m: float = _f(400.0, lo=50.0, hi=5000.0, help="side of the square deployment area")
    n_iab: int = _f(4, lo=0, hi=8, help="IAB nodes (besides the donor)")
    iab_ring_radius_m: float = _f(150.0, lo=10.0, hi=2000.0)
    topology: Literal["star", "chain"] = "star"
    bs_height_m: float = _f(10.0, lo=1.0, hi=100.0)
    ue_height_m: float = _f(1.5, lo=1.0, hi=22.5)
    n_ue: int = _f(16, lo=1, hi=64)
    min_ue_bs_distance_m: float = _f(10.0, lo=0.0, hi=500.0)
    max_iab: int = _f(4, lo=0, hi=8, help="padding: IAB nodes the observation/action can hold")
    max_ues: int = _f(24, lo=1, hi=64, help="padding: UEs the observation/action can hold")

    def _validate(self) -> None:
        if self.n_iab > self.max_iab:
            raise ConfigError(
                f"topology.n_iab={self.n_iab} exceeds topology.max_iab={self.max_iab}")
        if self.n_ue > self.max_ues:
            raise ConfigError(f"topology.n_ue={self.n_ue} exceeds topology.max_ues={self.max_ues}")
        if self.iab_ring_radius_m * math.sqrt(2) > self.area_m * 0.75:
            pass  # a ring partly outside the square is legal; UEs stay inside the square
        if self.topology == "chain" and self.n_iab < 2:
            raise ConfigError("topology.topology='chain' needs topology.n_iab >= 2")


@dataclass(frozen=True)
class RadioConfig(_Section):
    """Carrier, channels, antennas and the link-abstraction parameters."""

    _section_name = "radio"
    carrier_ghz: float = _f(28.0, lo=6.0, hi=100.0, help="TR 38.901 UMi is valid 0.5-100 GHz")
    bandwidth_mhz: float = _f(400.0, lo=1.0, hi=2000.0)
    n_channels: int = _f(8, lo=1, hi=32)
    bs_tx_power_dbm: float = _f(30.0, lo=-20.0, hi=60.0, help="over the full band, equal PSD")
    noise_figure_ue_db: float = _f(9.0, lo=0.0, hi=20.0)
    noise_figure_iab_db: float = _f(7.0, lo=0.0, hi=20.0)
    bs_array: tuple[int, int] = _f((8, 8), lo=1, hi=64, help="UPA rows x columns at donor/IAB")
    ue_array: tuple[int, int] = _f((4, 4), lo=1, hi=64, help="UPA rows x columns at UEs")
    shadowing_los_db: float = _f(4.0, lo=0.0, hi=20.0)
    shadowing_nlos_db: float = _f(7.82, lo=0.0, hi=20.0)
    shadowing_corr_los_m: float = _f(10.0, lo=0.1, hi=1000.0, help="TR 38.901 Table 7.5-6")
    shadowing_corr_nlos_m: float = _f(13.0, lo=0.1, hi=1000.0)
    los_corr_m: float = _f(50.0, lo=0.1, hi=1000.0, help="LOS state correlation distance")
    rician_k_db: float = _f(9.0, lo=-10.0, hi=30.0, help="LOS small-scale K-factor (UMi)")
    scatterer_speed_mps: float = _f(0.1, lo=0.0, hi=30.0,
                                   help="Doppler of the environment seen by static links")
    blockage_prob: float = _f(0.0, lo=0.0, hi=1.0, help="chance a LOS path is blocked")
    backhaul_los: bool = _f(True, help="IAB nodes are planned in LOS of their parent")
    nlos_beam_loss_db: float = _f(15.0, lo=0.0, hi=40.0,
                                  help="fallback only: array gain an NLOS path loses to "
                                       "angular spread (ns-3 models it with clusters); "
                                       "calibrated against ns-3's TR 38.901 channel")
    sinr_threshold_db: float = _f(0.0, lo=-20.0, hi=40.0)
    overhead: float = _f(0.18, lo=0.0, hi=0.9, help="FR2 downlink overhead")
    se_efficiency: float = _f(0.6, lo=0.01, hi=1.0)
    se_cap_bps_hz: float = _f(7.4063, lo=0.1, hi=20.0, help="NR 256QAM")
    se_min_sinr_db: float = _f(-10.0, lo=-30.0, hi=10.0)
    incumbent_interference_dbm: float = _f(-70.0, lo=-150.0, hi=0.0,
                                          help="per channel, at every receiver")
    deterministic: bool = _f(False, help="no shadowing, no fading, LOS forced")
    external_block_channels: int = _f(0, lo=0, hi=32,
                                      help="contiguous channels a neighbouring system's "
                                           "interferer occupies (0 = none)")
    external_eirp_dbm: float = _f(30.0, lo=-30.0, hi=80.0,
                                  help="its EIRP per channel toward the deployment")
    external_activity: float = _f(1.0, lo=0.0, hi=1.0,
                                  help="probability that it transmits in a frame")

    def _validate(self) -> None:
        if self.external_block_channels > self.n_channels:
            raise ConfigError(
                f"radio.external_block_channels={self.external_block_channels} exceeds "
                f"radio.n_channels={self.n_channels}")

    @property
    def channel_bandwidth_hz(self) -> float:
        return self.bandwidth_mhz * 1e6 / self.n_channels


@dataclass(frozen=True)
class TrafficConfig(_Section):
    """Downlink flows: Poisson packets with on/off bursts and a delay budget."""

    _section_name = "traffic"
    packet_bytes: int = _f(1500, lo=64, hi=65535)
    ue_rate_mbps: float = _f(100.0, lo=0.0, hi=5000.0, help="rate while a flow is on")
    on_mean_s: float = _f(1.0, lo=0.0, hi=1e6, open_lo=True)
    off_mean_s: float = _f(0.2, lo=0.0, hi=1e6, help="0 = always on")
    delay_budget_s: float = _f(0.020, lo=0.0, hi=10.0, open_lo=True)


@dataclass(frozen=True)
class DynamicsConfig(_Section):
    """Time structure, mobility and incumbents."""

    _section_name = "dynamics"
    frame_s: float = _f(0.010, lo=0.0, hi=1.0, open_lo=True)
    tick_s: float = _f(0.001, lo=0.0, hi=1.0, open_lo=True)
    episode_frames: int = _f(200, lo=1, hi=10_000_000)
    ue_speed_mps: float = _f(1.5, lo=0.0, hi=50.0)
    direction_hold_s: float = _f(5.0, lo=0.0, hi=1e6, open_lo=True)
    geometry_update_frames: int = _f(10, lo=1, hi=10_000)
    incumbent_activity: float = _f(0.1, lo=0.0, hi=0.95, help="stationary busy fraction")
    incumbent_on_mean_s: float = _f(0.2, lo=0.0, hi=1e6, open_lo=True)
    incumbent_miss_prob: float = _f(0.0, lo=0.0, hi=1.0,
                                    help="chance that sensing misses a busy channel in a frame")

    def _validate(self) -> None:
        ratio = self.frame_s / self.tick_s
        if abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(
                f"dynamics.frame_s={self.frame_s} must be a whole multiple of "
                f"dynamics.tick_s={self.tick_s}"
            )

    @property
    def ticks_per_frame(self) -> int:
        return int(round(self.frame_s / self.tick_s))


@dataclass(frozen=True)
class RewardConfig(_Section):
    """Weights of the per-frame reward."""

    _section_name = "reward"
    w_throughput: float = _f(1.0, lo=0.0, hi=1e6)
    w_fairness: float = _f(0.2, lo=0.0, hi=1e6)
    w_sinr_violation: float = _f(0.5, lo=0.0, hi=1e6)
    w_latency_violation: float = _f(0.5, lo=0.0, hi=1e6)
    w_incumbent_collision: float = _f(1.0, lo=0.0, hi=1e6)


@dataclass(frozen=True)
class ScenarioConfig(_Section):
    """The whole system model."""

    topology: TopologyConfig = field(default_factory=TopologyConfig)
    radio: RadioConfig = field(default_factory=RadioConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a scenario config must be a table, got {type(data).__name__}")
        return _build(cls, data)

    def replace(self, **changes: Any) -> ScenarioConfig:
        """Copy with ``section__field=value`` or ``section=...`` changes (validated)."""
        tree = self.to_dict()
        for key, value in changes.items():
            set_path(tree, key.replace("__", "."), value)
        return ScenarioConfig.from_dict(tree)

    @property
    def n_bs_max(self) -> int:
        return 1 + self.topology.max_iab

    @property
    def n_links_max(self) -> int:
        return self.topology.max_iab + self.topology.max_ues


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted='a.b'``; unknown keys raise ConfigError."""
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        if part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"unknown config section {'.'.join(parts[: i + 1])!r}")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config field {dotted!r}; known: {sorted(node)}")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``section.field=value`` (value in TOML/JSON syntax, or a bare string)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def read_table(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a dict, with errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    text = p.read_text()
    try:
        if p.suffix in (".toml", ".tml"):
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {str(p)!r}: unknown format; use .toml or .yaml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a table at top level")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                section: str | None = "scenario") -> ScenarioConfig:
    """Load a scenario config from a file (its ``[scenario]`` table, or the whole file when it
    has none) and apply ``section.field=value`` overrides."""
    tree = ScenarioConfig().to_dict()
    if path is not None:
        data = read_table(path)
        if section and section in data:
            data = data[section]
        elif section and any(k in data for k in ("tasks", "experiment", "agents")):
            data = {}
        _merge(tree, data, "")
    for text in overrides or []:
        key, value = parse_override(text)
        set_path(tree, key.removeprefix("scenario."), value)
    return ScenarioConfig.from_dict(tree)


def _merge(base: dict[str, Any], new: dict[str, Any], where: str) -> None:
    for key, value in new.items():
        here = f"{where}.{key}" if where else key
        if key not in base:
            raise ConfigError(f"unknown config field {here!r}; known: {sorted(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{here} must be a table, got {value!r}")
            _merge(base[key], value, here)
        else:
            base[key] = value
