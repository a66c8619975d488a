"""A sweep's settings and every check made before a file is written.

    spec = SweepSpec(base={"model": "vit", "data": "digits", "max_iters": 50},
                     grid={"init": ["vit", "mimetic"], "lr": [1e-3, 3e-3]}, seeds=[0, 1, 2])
    points = check_spec(spec)        # every (name, TrainConfig) of the sweep, or one ConfigError

The runs are the full product of the grid axes and the seeds, in a fixed order: the axes in the
order given, each axis's values in the order given, seeds innermost. A run's folder is named by
its settings, `init=vit,lr=0.001,seed=0`, so the same point always lands in the same folder and a
rerun finds its own work.

Values: a grid or base value may be a Python value or the text a user typed on the command line
("1e-3", "true", "none"); text is converted by the TrainConfig field's type, so the CLI and the
Python API build identical specs. Float fields hold floats (lr=1 becomes 1.0), so a run's name does
not depend on how its value was written.
"""
from dataclasses import dataclass, field, fields, replace
import hashlib
import itertools
import json
import re

from ..errors import ConfigError
from ..training.config import TrainConfig

# TrainConfig fields a grid cannot vary: seed has its own option; explicit is bookkeeping.
NOT_AXES = {"seed": "use --seeds for seeds", "explicit": "it is bookkeeping, not a setting"}
_FIELDS = {f.name: f for f in fields(TrainConfig)}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_SAFE = re.compile(r"[A-Za-z0-9._+-]+")           # characters kept as they are in a folder name
SPEC_FORMAT = 1                                    # sweep.json's layout version


@dataclass
class SweepSpec:
    """base: TrainConfig fields shared by every run; grid: field -> list of values (dashes or
    underscores); seeds: a list of seeds, or an int n for seeds 0..n-1."""
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    seeds: object = (0,)

    def to_dict(self):
        """The canonical form written to sweep.json (after normalize_spec)."""
        return {"format": SPEC_FORMAT, "base": dict(sorted(self.base.items())),
                "grid": {k: list(v) for k, v in self.grid.items()}, "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, d):
        return cls(base=dict(d["base"]), grid={k: list(v) for k, v in d["grid"].items()},
                   seeds=list(d["seeds"]))

    def spec_id(self):
        """A short hash of the canonical spec: names Dask tasks and scratch folders."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def field_name(name, where):
    """A TrainConfig field from a user's spelling (dashes or underscores); `where` names the
    option in the error."""
    key = str(name).strip().lstrip("-").replace("-", "_")
    if key in NOT_AXES and where.startswith("--grid"):
        raise ConfigError(f"{where}: {key} cannot be a grid axis ({NOT_AXES[key]})")
    if key not in _FIELDS or key == "explicit":
        raise ConfigError(f"{where}: unknown training setting {name!r}; the settings are the "
                          f"options of `python cli.py train`")
    return key


def convert_value(key, value, where):
    """value converted to the type of TrainConfig field `key` (text is parsed; ints become floats
    for float fields). Range and choice checks are TrainConfig's, later."""
    f = _FIELDS[key]
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "none" and f.default is None:
            return None
        try:
            if f.type is bool:
                if text.lower() not in _TRUE + _FALSE:
                    raise ValueError
                return text.lower() in _TRUE
            if f.type is int:
                return int(text)
            if f.type is float:
                return float(text)
        except ValueError:
            kind = {bool: "true or false", int: "an integer", float: "a number"}[f.type]
            raise ConfigError(f"{where}: {key} must be {kind}, got {value!r}") from None
        return text
    if f.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_grid_option(text):
    """`NAME=V1,V2,...` from the command line -> (NAME, [V1, V2, ...]) as typed text."""
    if "=" not in text:
        raise ConfigError(f"--grid {text}: expected NAME=V1,V2,... (e.g. --grid lr=1e-3,1e-2)")
    name, _, values = text.partition("=")
    items = [v.strip() for v in values.split(",")]
    if not name.strip() or not values.strip() or any(not v for v in items):
        raise ConfigError(f"--grid {text}: expected NAME=V1,V2,... with no empty value")
    return name.strip(), items


def parse_seeds(value):
    """--seeds: "0,1,2" (a list) or "3" (seeds 0, 1, 2); an int n or a list from Python."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if "," in text:
                return [int(s) for s in text.split(",") if s.strip()]
            value = int(text)
        except ValueError:
            raise ConfigError(f"--seeds must be a count (3) or a list (0,1,2), got {text!r}") \
                from None
    if isinstance(value, bool):
        raise ConfigError(f"--seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"--seeds {value}: the count of seeds must be at least 1")
        return list(range(value))
    return list(value)


def value_text(value):
    """How a value appears in a run's name and in results.md: floats in their shortest exact
    form (0.001, 1e-05), None as none, booleans as true/false."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _name_part(axis, value):
    """axis=value for a folder name; a value with characters unsafe in a path (a file name with
    a slash, say) keeps its safe characters plus a short hash, so names stay distinct."""
    text = value_text(value)
    if not _SAFE.fullmatch(text) or len(text) > 40:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
        text = re.sub(r"[^A-Za-z0-9._+-]+", "_", text)[-32:].strip("._") + "-" + digest
    return f"{axis}={text}"


def run_name(settings, seed):
    """The folder name of one run: its grid settings in axis order, then the seed."""
    return ",".join([_name_part(a, v) for a, v in settings.items()] + [f"seed={seed}"])


def normalize_spec(spec):
    """A SweepSpec with field names and values in canonical form; one ConfigError naming the
    option, axis or value at the first problem. Nothing is written."""
    if not isinstance(spec, SweepSpec):
        raise ConfigError(f"expected a SweepSpec, got {type(spec).__name__}")
    base = {}
    for name, value in dict(spec.base).items():
        key = field_name(name, f"--{str(name).replace('_', '-')}")
        if key == "seed":
            raise ConfigError("--seed: a sweep's seeds come from --seeds")
        base[key] = convert_value(key, value, f"--{key.replace('_', '-')}")
    grid = {}
    for name, values in dict(spec.grid).items():
        key = field_name(name, f"--grid {name}")
        where = f"--grid {key}"
        if key in grid:
            raise ConfigError(f"{where}: the axis is given twice; give its values once")
        if key in base:
            raise ConfigError(f"{where}: {key} is both a grid axis and a shared option "
                              f"(--{key.replace('_', '-')}); give it once")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        converted = [convert_value(key, v, f"{where}={v}") for v in values]
        if not converted:
            raise ConfigError(f"{where}: the axis has no values")
        seen = set()
        for raw, v in zip(values, converted):
            text = value_text(v)
            if text in seen:
                raise ConfigError(f"{where}={raw}: the value is given twice")
            seen.add(text)
        grid[key] = converted
    seeds = parse_seeds(spec.seeds)
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"--seeds: every seed must be an integer >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed is given twice ({seeds})")
    return SweepSpec(base=base, grid=grid, seeds=seeds)


def grid_points(spec):
    """[settings dict] of the grid product, in sweep order (seeds not included)."""
    axes = list(spec.grid)
    return [dict(zip(axes, combo)) for combo in itertools.product(*spec.grid.values())]


def _describe(settings):
    return ",".join(f"{a}={value_text(v)}" for a, v in settings.items())


def make_config(spec, settings, seed):
    """The TrainConfig of one run: base options, then the point's settings, then its seed; all
    recorded as explicit, as `python cli.py train` would with the same options. shards is 1
    unless the spec sets it: a worker has one core (training/shards.py), and a run's result must
    not depend on the backend or the machine that ran it."""
    cfg = TrainConfig.for_model(**spec.base, **settings, seed=seed)
    return cfg if cfg.shards is not None else replace(cfg, shards=1)


def check_spec(spec, check_data=True):
    """Normalize spec and check every run it describes; returns (spec, [(name, settings, seed,
    TrainConfig)]) in sweep order. One ConfigError (or DataError) names the first bad axis value
    or combination. With check_data, every distinct data set is loaded and every model
    configuration built (a context longer than the text, a scheme that cannot work with the
    block form): cheap next to one run."""
    spec = normalize_spec(spec)
    try:
        make_config(spec, {}, spec.seeds[0])
    except ConfigError as e:
        raise ConfigError(f"shared options: {e}") from None
    for axis, values in spec.grid.items():             # each value alone: the clearest message
        for v in values:
            try:
                make_config(spec, {axis: v}, spec.seeds[0])
            except ConfigError as e:
                raise ConfigError(f"--grid {axis}={value_text(v)}: {e}") from None
    runs, datasets = [], {}
    for settings in grid_points(spec):
        try:
            cfg = make_config(spec, settings, spec.seeds[0])
            if check_data:
                _check_model(cfg, datasets)
        except ConfigError as e:
            raise ConfigError(f"--grid {_describe(settings)}: {e}") from None
        for seed in spec.seeds:
            cfg = make_config(spec, settings, seed)
            runs.append((run_name(settings, seed), settings, seed, cfg))
    return spec, runs


def _check_model(cfg, datasets):
    """Load cfg's data set (once per distinct one) and build its model configuration."""
    from ..training.build import resolve_data, model_config
    key = (cfg.model, cfg.data)
    if key not in datasets:
        datasets[key] = resolve_data(cfg)
    model_config(cfg, datasets[key])

