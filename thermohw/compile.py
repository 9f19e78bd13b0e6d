"""Compile a trained Computer onto a hardware Target.

The compile stage is an explicit list of passes, each a plain function
``CompiledProgram -> CompiledProgram`` (Qiskit-style split: *check* passes only add to the
report; *transform* passes change the program):

    check_fit      (check)     unit budget; an impossible target raises
    place          (transform) logical -> physical units; couplings the topology lacks are
                               pruned and reported (or refused, as the user chooses)
    scale          (transform) choose the programmable full-scale ranges; clip what exceeds them
    quantise       (transform) uniform signed codes for couplings and biases, trims for J2
    lower          (transform) the backend maps the programmed model onto components/parameters
                               and says exactly which ideal Computer they implement (realised)
    check_limits   (check)     the backend's physical limits (bandwidth, overdamping, beta_C...)

The *realised* Computer is the key output: the ideal Langevin model that the quantised
hardware implements, in logical unit order, so the ideal simulator can run it beside SPICE.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .computer import Computer
from .energy import EnergyScale, from_scales as energy_scale_from
from .errors import InputError
from .io import atomic_write, write_json, save_record, load_record, numeric_array
from . import quantise as quantise_
from .target import Target, resolve
from .provenance import provenance
from .spice.netlist import eng_unit

PROGRAM_SCHEMA = "thermohw.program/1"
MANIFEST = "manifest.json"  # the files a compile wrote into its folder
MANIFEST_SCHEMA = "thermohw.manifest/1"
# what a program folder from before manifests held (every backend's files)
_LEGACY_PROGRAM_FILES = frozenset({"source.npz", "realised.npz", "programmed.npz", "target.yaml", "codes.npz",
                                   "report.json", "summary.txt", "chip.cir", "units.csv", "couplings.csv",
                                   "oscillators.yaml", "rfsquids.yaml", "digits.npz"})


def check_program_folder(folder: str | Path) -> None:
    """Before compiling: ``folder`` can take a compiled program (new, empty, or an earlier
    program's folder), else InputError naming what is in the way."""
    _previous_program_files(Path(folder))


def _previous_program_files(folder: Path) -> set[str]:
    """Names of the files an earlier compile wrote into ``folder`` (from its manifest), which a
    recompile may replace or remove. Raises InputError if the folder holds anything else."""
    if not folder.exists():
        return set()
    if not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder; choose a folder for the compiled program")
    present = {p.name for p in folder.iterdir()}
    if not present:
        return set()
    listed: set[str] = set()
    mf = folder / MANIFEST
    if mf.is_file():
        try:
            m = json.loads(mf.read_text())
            files = m["files"] if isinstance(m, dict) and m.get("schema") == MANIFEST_SCHEMA else None
        except (OSError, ValueError, KeyError, UnicodeDecodeError):
            files = None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise InputError(f"{mf}: damaged manifest; compile into a new folder (or empty this one)")
        # plain names only: a crafted manifest must not make a recompile delete files elsewhere
        listed = {f for f in files if f and Path(f).name == f and f not in (".", "..")}
        listed.add(MANIFEST)
    else:
        try:
            rep = json.loads((folder / "report.json").read_text())
            legacy = isinstance(rep, dict) and rep.get("schema") == PROGRAM_SCHEMA
        except (OSError, ValueError, UnicodeDecodeError):
            legacy = False
        if legacy:  # a program folder written before manifests: its known files only
            listed = set(_LEGACY_PROGRAM_FILES)
    foreign = sorted(n for n in present - listed if not n.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise InputError(f"{folder}: holds files not written by 'thermohw compile' ({shown}); compile into a new "
                         "or empty folder, or move them away")
    return listed & present


@dataclass(frozen=True)
class CompileOptions:
    """User choices that override the target's defaults.

    bits / bias_bits : coupling and bias code widths (default: the target's).
    rounding : "nearest" | "stochastic" (default: the target's); ``seed`` seeds stochastic rounding.
    prune : "prune" | "refuse" couplings the topology cannot host (default: the target's).
    range : "auto" uses the smallest symmetric full-scale that holds the model's values (the
        target's min/max are the largest programmable range); "full" uses the target's range.
    coupling_headroom : "auto" full scale of the couplings = this factor x max |J| (>= 1; default
        None: the smallest factor that leaves trim room for the target's gain mismatch,
        ``quantise.headroom_for`` - 1 when the target lists none), and
    bias_margin : "auto" full scale of the biases = max |b| + this margin (model units) - room
        for calibration trims (gain errors scale a coupling, offsets shift a bias), within the
        target's range. A wider full scale costs resolution: every LSB grows with it.
    netlist : what the written netlist (RC, LC) does: "generate" - the paper's generation
        protocol: start in the coupling-free equilibrium (drawn with ``netlist_seed``, written
        as initial conditions), then run the trained dynamics for ``t_f`` model time units;
        "free" - a short free run from x = 0 (one model time unit, RC; five, LC).
    netlist_seed : seed of the start state and of the netlist's noise (1..2147483647).
    noise : the netlist's noise (RC, LC): "trrandom" - ngspice's seeded Gaussian source;
        "pwl" - drawn by numpy, written to noise.inc (held PWL current sources, for
        simulators without TRRANDOM) and noise.npz (the same samples, for paired ideal runs);
        "none" - noiseless (the deterministic drift).
    t_f : generation time in model units (default: the model's training t_f, else 2.5).
    """

    bits: int | None = None
    bias_bits: int | None = None
    rounding: str | None = None
    prune: str | None = None
    range: str = "auto"
    seed: int = 0
    placement_effort: int = 20
    coupling_headroom: float | None = None
    bias_margin: float = 0.0
    netlist: str = "generate"
    netlist_seed: int = 1
    t_f: float | None = None
    noise: str = "trrandom"

    def __post_init__(self) -> None:
        quantise_.check_bits(self.bits, "bits")
        quantise_.check_bits(self.bias_bits, "bias_bits")
        if self.rounding not in (None, "nearest", "stochastic"):
            raise InputError(f"rounding = {self.rounding!r}; use 'nearest' or 'stochastic'")
        if self.prune not in (None, "prune", "refuse"):
            raise InputError(f"prune = {self.prune!r}; use 'prune' or 'refuse'")
        quantise_.check_range(self.range)
        if self.coupling_headroom is not None and not (isinstance(self.coupling_headroom, (int, float))
                                                       and math.isfinite(self.coupling_headroom)
                                                       and self.coupling_headroom >= 1.0):
            raise InputError(f"coupling_headroom = {self.coupling_headroom}; use a factor >= 1 (1: no headroom) "
                             "or None (from the target's gain mismatch)")
        if not (math.isfinite(self.bias_margin) and self.bias_margin >= 0.0):
            raise InputError(f"bias_margin = {self.bias_margin}; use a margin >= 0 in model units of b")
        if self.netlist not in ("generate", "free"):
            raise InputError(f"netlist = {self.netlist!r}; use 'generate' (the generation protocol) or 'free'")
        if isinstance(self.netlist_seed, bool) or int(self.netlist_seed) != self.netlist_seed \
                or not 1 <= int(self.netlist_seed) <= 2147483647:
            raise InputError(f"netlist_seed = {self.netlist_seed!r}; use a whole number in 1..2147483647 "
                             "(ngspice ignores any other .options seed)")
        if self.t_f is not None and not (math.isfinite(self.t_f) and self.t_f > 0):
            raise InputError(f"t_f = {self.t_f!r}; the generation time must be > 0 model time units")
        if self.noise not in ("trrandom", "pwl", "none"):
            raise InputError(f"noise = {self.noise!r}; use 'trrandom', 'pwl' (portable files) or 'none'")

    def coupling_headroom_for(self, c: Computer, target: Target) -> float:
        """The coupling headroom for ``c`` on ``target``: the option, or (None) the smallest
        factor that leaves room to trim the couplings of a chip with the target's
        ``components.gain_mismatch`` (``quantise.headroom_for``: nine chips in ten have no
        coupling out of range)."""
        gain_sd = target.components.gain_mismatch if target.components is not None else 0.0
        couplings = quantise_.with_settings(target.couplings, self.bits, None, None)
        return quantise_.headroom_for(c, couplings, gain_sd, self.range, self.coupling_headroom)

    def generation_time(self, model: Computer) -> float:
        """t_f of the generation protocol: the option, else the model's training t_f, else 2.5."""
        if self.t_f is not None:
            return float(self.t_f)
        tr = model.meta.get("train") if isinstance(model.meta, dict) else None
        t = tr.get("t_f") if isinstance(tr, dict) else None
        return float(t) if isinstance(t, (int, float)) and t > 0 else 2.5


@dataclass(frozen=True, eq=False)
class CompiledProgram:
    """A computer compiled onto a target. Fields are filled in by the passes.

    source : the float model. programmed : the model after placement, pruning, clipping and
    quantisation (what the codes encode). realised : the exact ideal model the hardware
    implements (from the backend). codes : integer DAC codes per parameter class.
    artefact : the backend's physical description (netlist data, parameter set).
    scales : SI scale factors (energy per model unit, k_B T_eff, ...). energy_scale : the
    model's kT in joules and the temperature it stands for (from ``lower``; reports give heat
    in joules with it). report : the compile report.
    """

    source: Computer
    target: Target
    options: CompileOptions = field(default_factory=CompileOptions)
    placement: np.ndarray | None = None
    programmed: Computer | None = None
    realised: Computer | None = None
    codes: dict = field(default_factory=dict)
    artefact: Any = None
    scales: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    energy_scale: EnergyScale | None = None

    def __post_init__(self) -> None:
        # checked on construction (every pass builds a new record): a field of the wrong kind
        # fails here, naming it, instead of deep inside a later pass or backend
        for name, kind in (("source", Computer), ("target", Target), ("options", CompileOptions)):
            if not isinstance(getattr(self, name), kind):
                raise InputError(f"CompiledProgram.{name} must be a {kind.__name__}, got "
                                 f"{type(getattr(self, name)).__name__}")
        for name in ("programmed", "realised"):
            c = getattr(self, name)
            if c is not None and not isinstance(c, Computer):
                raise InputError(f"CompiledProgram.{name} must be a Computer or None, got {type(c).__name__}")
        if self.programmed is not None and self.realised is not None \
                and self.programmed.n_units != self.realised.n_units:
            raise InputError(f"CompiledProgram: programmed has {self.programmed.n_units} units, realised "
                             f"{self.realised.n_units}")
        if self.energy_scale is not None and not isinstance(self.energy_scale, EnergyScale):
            raise InputError("CompiledProgram.energy_scale must be an EnergyScale or None")
        for name in ("codes", "scales", "report"):
            if not isinstance(getattr(self, name), dict):
                raise InputError(f"CompiledProgram.{name} must be a dict")
        for k, v in self.codes.items():
            if np.asarray(v).dtype.kind not in "iu":
                raise InputError(f"CompiledProgram.codes[{k!r}] must hold integer codes")

    def with_(self, **changes: Any) -> "CompiledProgram":
        return dataclasses.replace(self, **changes)

    def note(self, key: str, value: Any) -> "CompiledProgram":
        return self.with_(report={**self.report, key: value})

    def violation(self, check: str, message: str, **data: Any) -> "CompiledProgram":
        v = list(self.report.get("violations", []))
        v.append({"check": check, "message": message, **data})
        return self.note("violations", v)

    @property
    def backend(self):
        # lazy (start-up): backends.josephson loads scipy.constants; at top, `thermohw --help` takes 0.45 s, not 0.3 s
        from .backends import get_backend

        return get_backend(self.target.kind)

    @property
    def coupling_quant(self):
        return quantise_.with_settings(self.target.couplings, self.options.bits, self.options.rounding,
                      self.report.get("scale", {}).get("coupling_range"))

    @property
    def bias_quant(self):
        return quantise_.with_settings(self.target.biases, self.options.bias_bits, self.options.rounding,
                      self.report.get("scale", {}).get("bias_range"))

    # ---- files ---------------------------------------------------------------------------
    def save(self, folder: str | Path, copies: dict[str, str | Path] | None = None) -> list[Path]:
        """Write everything a chip designer and the later stages need into ``folder``, and
        ``copies`` ({name: source file}, e.g. the training digits) beside them.

        The files written are listed in ``folder/manifest.json``; recompiling into the folder
        removes the previous program's files that this one does not rewrite (only those), so no
        stale netlist of another backend stays beside the new program. A folder holding files
        thermohw did not write is refused (nothing there is touched)."""
        folder = Path(folder)
        previous = _previous_program_files(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = [self.source.save(folder / "source.npz"), self.realised.save(folder / "realised.npz"),
               self.programmed.save(folder / "programmed.npz"), self.target.save(folder / "target.yaml")]

        out.append(save_record(folder / "codes.npz", "thermohw.codes/1",
                               {"placement_note": "placement[i] = physical unit of logical unit i"},
                               {"placement": self.placement, **{k: np.asarray(v) for k, v in self.codes.items()}}))
        out.append(write_json(folder / "report.json", {"schema": PROGRAM_SCHEMA, "target": self.target.name,
                                                        "kind": self.target.kind,
                                                        "options": dataclasses.asdict(self.options),
                                                        "scales": self.scales, **self.report,
                                                        "energy_scale": (self.energy_scale.to_dict()
                                                                         if self.energy_scale else None),
                                                        "provenance": _provenance(self.options)}))
        summary = summary_text(self)

        out.append(atomic_write(folder / "summary.txt", lambda fh: fh.write(summary), mode="w"))
        out += self.backend.write(self, folder)
        for name, src in (copies or {}).items():
            if Path(name).name != name or name == MANIFEST:
                raise InputError(f"copy name {name!r} must be a plain file name")
            out.append(atomic_write(folder / name, lambda fh, src=src: fh.write(Path(src).read_bytes())))
        written = sorted({p.name for p in out})
        out.append(write_json(folder / MANIFEST, {"schema": MANIFEST_SCHEMA, "files": written}))  # counted too
        for name in sorted(previous - set(written) - {MANIFEST}):  # the earlier program's files only
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
        return out

    @classmethod
    def load(cls, folder: str | Path) -> "CompiledProgram":
        """Read a folder written by :meth:`save` (the artefact is rebuilt by the backend)."""
        folder = Path(folder)
        if not (folder / "report.json").is_file():
            raise InputError(f"{folder}: not a compiled program (no report.json); "
                             "make one with 'thermohw compile'")
        try:
            return cls._load(folder)
        except (KeyError, TypeError, ValueError, OverflowError, ArithmeticError, IndexError, RecursionError) as e:
            # ValueError covers JSONDecodeError and UnicodeDecodeError
            if isinstance(e, InputError):
                raise
            text = " ".join(str(e).split())[:100]
            raise InputError(f"{folder}: damaged compiled program ({type(e).__name__}: {text}); "
                             "compile it again") from None

    @classmethod
    def _load(cls, folder: Path) -> "CompiledProgram":
        rep = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        src = folder / "report.json"
        if not isinstance(rep, dict) or rep.get("schema") != PROGRAM_SCHEMA:
            found = rep.get("schema") if isinstance(rep, dict) else type(rep).__name__
            raise InputError(f"{src}: schema {str(found)[:40]!r}, expected {PROGRAM_SCHEMA!r}; compile it again")
        for key in ("options", "scales"):
            if not isinstance(rep.get(key), dict):
                raise InputError(f"{src}: {key} must be a JSON object; the file is damaged - compile it again")
        _check_scales(src, rep["scales"], rep.get("scale"))
        target = Target.from_yaml(folder / "target.yaml")
        _, codes = load_record(folder / "codes.npz", "thermohw.codes/1")
        if "placement" not in codes:
            raise InputError(f"{folder / 'codes.npz'}: lacks the placement array; compile it again")
        for k, v in codes.items():
            numeric_array(folder / "codes.npz", k, v, integer=True)
        placement = codes.pop("placement")
        opts = CompileOptions(**rep.pop("options"))
        scales = rep.pop("scales")
        es = rep.pop("energy_scale", None)
        for k in ("schema", "target", "kind"):
            rep.pop(k, None)
        source, programmed, realised = (Computer.load(folder / f) for f in ("source.npz", "programmed.npz",
                                                                             "realised.npz"))
        n = source.n_units
        if programmed.n_units != n or realised.n_units != n:
            raise InputError(f"{folder}: source, programmed and realised models have {n}, {programmed.n_units} "
                             f"and {realised.n_units} units; the files are from different programs - compile again")
        if placement.shape != (n,) or len(set(placement.tolist())) != n or (
                n and not (0 <= placement.min() and placement.max() < target.units)):
            raise InputError(f"{folder / 'codes.npz'}: placement must give each of the {n} units a distinct "
                             f"physical unit in 0..{target.units - 1}; the file is damaged - compile it again")
        # folders compiled before the record existed: derive it from their scales
        es = EnergyScale.from_dict(es) if es is not None else energy_scale_from(scales, programmed.kT_ref)
        p = cls(source=source, target=target, options=opts, placement=placement, programmed=programmed,
                realised=realised, codes=codes, scales=scales, report=rep, energy_scale=es)
        return p.with_(artefact=p.backend.lower(p))


_POSITIVE_SCALES = ("V_s_V", "tau_s", "phi_s_Wb", "energy_per_model_unit_J", "kT_J", "C_F", "mu_per_s")


def _check_scales(src: Path, scales: dict, scale: Any) -> None:
    """A program's SI scales are finite numbers (the backends divide by them), or null where
    not applicable; its quantisation ranges are [min, max] pairs."""
    for k, v in scales.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (
                v <= 0 and k in _POSITIVE_SCALES):
            raise InputError(f"{src}: scales.{k} = {str(v)[:30]} must be a finite{' positive' * (k in _POSITIVE_SCALES)} "
                             "number; the file is damaged - compile it again")
    if scale is None:
        return
    if not isinstance(scale, dict):
        raise InputError(f"{src}: scale must be a JSON object; the file is damaged - compile it again")
    for k in ("coupling_range", "bias_range"):
        r = scale.get(k)
        if r is None:
            continue
        ok = isinstance(r, list) and len(r) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in r) and r[0] < r[1]
        if not ok:
            raise InputError(f"{src}: scale.{k} must be [min, max] with min < max; the file is damaged "
                             "- compile it again")


def model_hash(c: Computer) -> str:
    """A short content hash of a model (for netlist headers and provenance)."""
    h = hashlib.sha256()
    for a in (c.J, c.b, c.J2, c.J4, c.mu, c.kT):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# passes
# ---------------------------------------------------------------------------------------------
def check_fit(p: CompiledProgram) -> CompiledProgram:
    """The model must fit the unit budget; anything else can be pruned, clipped or reported."""
    n, budget = p.source.n_units, p.target.units
    if n > budget:
        raise InputError(f"the model has {n} units but target {p.target.name!r} has {budget}; "
                         "use a larger target (edit 'units' in its YAML) or train a smaller model")
    if not np.all(np.isfinite(p.source.J)) or not np.all(np.isfinite(p.source.b)):
        raise InputError("the model has NaN or inf parameters; retrain it")
    return p.note("fit", {"model_units": n, "target_units": budget, "unused_units": budget - n})


def _retained(W: np.ndarray, A: np.ndarray, perm: np.ndarray) -> float:
    return float(np.sum(np.triu(W * A[np.ix_(perm, perm)], 1)))


def _swap_gain(W: np.ndarray, Ap: np.ndarray, a: int, b: int) -> float:
    """Change of the retained weight when logical units a and b exchange physical sites
    (Ap = adjacency in logical order, zero diagonal): sum_{k != a,b} (W_ak - W_bk)(Ap_bk - Ap_ak);
    the a-b pair keeps its edge. The full dot product also counts k = a and k = b, each
    contributing -W_ab Ap_ab, so they are added back."""
    return float(np.dot(W[a] - W[b], Ap[b] - Ap[a])) + 2.0 * W[a, b] * Ap[a, b]


def _improve_placement(W: np.ndarray, A: np.ndarray, perm: np.ndarray, effort: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Pairwise-swap local search maximising the retained coupling weight sum |J| over edges
    the hardware offers. Each candidate swap is evaluated in O(N)."""
    n = len(perm)
    perm = perm.copy()
    Ap = A[np.ix_(perm, perm)].astype(np.float64)  # adjacency seen in logical order
    for _ in range(effort * n):
        a, b = rng.integers(0, n, size=2)
        if a == b:
            continue
        delta = _swap_gain(W, Ap, a, b)
        if delta > 1e-12:
            perm[[a, b]] = perm[[b, a]]
            Ap[[a, b], :] = Ap[[b, a], :]
            Ap[:, [a, b]] = Ap[:, [b, a]]
    return perm


def _degree_limited(W: np.ndarray, mask: np.ndarray, d: int) -> np.ndarray:
    """Keep the strongest couplings such that no unit exceeds degree d (greedy b-matching)."""
    n = W.shape[0]
    ii, jj = np.nonzero(np.triu(mask, 1))
    order = np.argsort(-W[ii, jj], kind="stable")
    deg = np.zeros(n, dtype=np.int64)
    keep = np.zeros((n, n), dtype=bool)
    for k in order:
        i, j = ii[k], jj[k]
        if deg[i] < d and deg[j] < d:
            keep[i, j] = keep[j, i] = True
            deg[i] += 1
            deg[j] += 1
    return keep


def _placement_hint(c: Computer, n: int) -> np.ndarray:
    """The placement a chip-aware training run gave the model (``Computer.placement``), so the
    trained mask lands exactly on the target's graph; identity when there is none."""
    if c.placement is None:
        return np.arange(n)
    if not np.array_equal(np.sort(c.placement), np.arange(n)):
        # place() searches permutations of the first n physical units (the target's mask(n))
        raise InputError(f"the model's placement spreads its {n} units beyond physical units 0..{n - 1}; "
                         "compile places a model on the first units of a target - retrain it with "
                         "thermohw train --target, or drop the placement (Computer.replace(placement=None))")
    return c.placement


def place(p: CompiledProgram) -> CompiledProgram:
    """Map logical units onto physical ones and decide which couplings survive.

    all-to-all / admitted masks: identity. Degree-limited (programmable routing): keep the
    strongest couplings within the degree bound. Fixed sparse graphs (lattice, bipartite, edge
    list): identity (or the model's ``placement`` from chip-aware training) improved
    by a swap search that maximises the retained sum of |J|.
    """
    c, t = p.source, p.target
    n = c.n_units
    W = np.abs(c.J)
    topo = t.topology
    perm = np.arange(n)
    if topo.type == "degree-limited":
        keep = _degree_limited(W, c.mask, topo.max_degree)
    else:
        A = t.mask(n) if topo.type != "all-to-all" else np.ones((n, n), bool)
        perm = _placement_hint(c, n)
        if not np.all(A[np.ix_(perm, perm)][c.mask]) and p.options.placement_effort > 0:
            rng = np.random.default_rng(p.options.seed)
            perm = _improve_placement(W, A, perm, p.options.placement_effort, rng)
        keep = c.mask & A[np.ix_(perm, perm)]
    lost = c.mask & ~keep
    n_lost = int(np.count_nonzero(np.triu(lost, 1)))
    lost_w = float(np.sum(np.triu(W * lost, 1)))
    total_w = float(np.sum(np.triu(W, 1))) or 1.0
    policy = p.options.prune or t.couplings.prune
    info = {"type": topo.type, "couplings_in_model": c.n_couplings, "couplings_pruned": n_lost,
            "pruned_abs_J_fraction": lost_w / total_w, "identity": bool(np.all(perm == np.arange(n)))}
    if n_lost and policy == "refuse":
        ii, jj = np.nonzero(np.triu(lost, 1))
        ex = ", ".join(f"{i}-{j}" for i, j in list(zip(ii.tolist(), jj.tolist()))[:5])
        raise InputError(f"target {t.name!r} ({topo.type}) cannot host {n_lost} of the model's "
                         f"{c.n_couplings} couplings (e.g. {ex}; {100 * lost_w / total_w:.1f} % of sum |J|); "
                         "train for this topology (thermohw train --target) or allow pruning (--prune)")
    # a chip-aware model keeps its placement field, as the search left it (p.placement is the authority)
    prog = c.replace(J=np.where(keep, c.J, 0.0), mask=keep & c.mask, placement=None if c.placement is None else perm)
    q = p.with_(placement=perm, programmed=prog).note("placement", info)
    if n_lost:
        q = q.violation("topology", f"{n_lost} couplings pruned ({100 * lost_w / total_w:.1f} % of sum |J|)",
                        count=n_lost)
    return q


def scale(p: CompiledProgram) -> CompiledProgram:
    """Choose the programmable ranges (smallest range holding the model, within the target's)
    and clip what exceeds them."""
    c = p.programmed
    o = p.options
    h = o.coupling_headroom_for(c, p.target)
    (lo_j, hi_j), (lo_b, hi_b), jmax, bmax = quantise_.ranges(p.target.couplings, p.target.biases, c, o.range,
                                                              h, o.bias_margin)
    J = np.where(c.mask, np.clip(c.J, lo_j, hi_j), 0.0)
    b = np.clip(c.b, lo_b, hi_b)
    n_cj = int(np.count_nonzero(np.triu(J != c.J, 1)))
    n_cb = int(np.count_nonzero(b != c.b))
    q = p.with_(programmed=c.replace(J=J, b=b)).note("scale", {
        "coupling_range": [lo_j, hi_j], "bias_range": [lo_b, hi_b],
        "coupling_full_scale": max(abs(lo_j), abs(hi_j)), "bias_full_scale": max(abs(lo_b), abs(hi_b)),
        "model_max_abs_J": jmax, "model_max_abs_b": bmax, "coupling_headroom": h,
        "couplings_clipped": n_cj, "biases_clipped": n_cb})
    if n_cj or n_cb:
        q = q.violation("range", f"{n_cj} couplings and {n_cb} biases exceed the target's range and were clipped",
                        couplings=n_cj, biases=n_cb)
    return q


def quantise(p: CompiledProgram) -> CompiledProgram:
    """Signed uniform codes for couplings and biases; J2 onto the diagonal trim grid."""
    c = p.programmed
    rng = np.random.default_rng(p.options.seed)
    qj, qb = p.coupling_quant, p.bias_quant
    codes_j, codes_b = quantise_.codes(c, qj, qb, rng)
    J = qj.decode(codes_j)
    b = qb.decode(codes_b)
    codes = {"J": codes_j, "b": codes_b}
    J2 = c.J2
    if p.target.diagonal is not None:
        tr = p.target.diagonal
        codes["J2_trim"] = tr.encode(c.J2, rng)
        J2 = tr.decode(codes["J2_trim"])
        if np.any((c.J2 < tr.min) | (c.J2 > tr.max)):
            p = p.violation("trim", f"J2 outside the trim range [{tr.min:g}, {tr.max:g}] was clipped")
    zeroed = int(np.count_nonzero(np.triu((J == 0) & c.mask, 1)))
    prog = c.replace(J=J, b=b, J2=J2, mask=c.mask)
    return p.with_(programmed=prog, codes=codes).note("quantise", {
        "coupling_bits": qj.bits, "coupling_lsb": qj.step, "bias_bits": qb.bits, "bias_lsb": qb.step,
        "rounding": qj.rounding, "couplings_rounded_to_zero": zeroed,
        "J2_trim_lsb": p.target.diagonal.step if p.target.diagonal is not None else None})


def lower(p: CompiledProgram) -> CompiledProgram:
    """The backend maps the programmed model onto hardware and returns the realised model."""
    be = p.backend
    scales = be.scales(p)
    p = p.with_(scales=scales)
    art = be.lower(p)
    realised = be.to_computer(art, p)
    return p.with_(artefact=art, realised=realised, energy_scale=energy_scale_from(scales, p.programmed.kT_ref))


def check_limits(p: CompiledProgram) -> CompiledProgram:
    for v in p.backend.check(p):
        p = p.violation(**v)
    return p


def error_report(p: CompiledProgram) -> CompiledProgram:
    """Max and RMS errors of the realised model against the source, per parameter class."""
    s, r = p.source, p.realised
    iu = np.triu_indices(s.n_units, 1)
    m = s.mask[iu]

    def stats(a: np.ndarray, b: np.ndarray) -> dict:
        d = b - a
        scale_ = float(np.sqrt(np.mean(a * a))) if a.size else 0.0
        return {"max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
                "rms": float(np.sqrt(np.mean(d * d))) if d.size else 0.0,
                "rms_relative": float(np.sqrt(np.mean(d * d)) / scale_) if scale_ > 0 else 0.0}

    errors = {"J": stats(s.J[iu][m], r.J[iu][m]), "b": stats(s.b, r.b), "J2": stats(s.J2, r.J2),
              "J4": stats(s.J4, r.J4), "mu": stats(s.mu, r.mu), "kT": stats(s.kT, r.kT)}
    return p.note("errors", errors).note("realised_couplings", r.n_couplings)


PASSES: list[Callable[[CompiledProgram], CompiledProgram]] = [
    check_fit, place, scale, quantise, lower, check_limits, error_report]


def compile_computer(computer: Computer, target: Target | str, options: CompileOptions | None = None,
                     passes: list | None = None) -> CompiledProgram:
    """Run the compile passes; returns the CompiledProgram (see the module docstring)."""
    if isinstance(target, str):
        target = resolve_target(target)
    p = CompiledProgram(source=computer, target=target, options=options or CompileOptions(),
                        report={"violations": [], "source_hash": model_hash(computer)})
    for f in passes or PASSES:
        p = f(p)
    return p


def resolve_target(spec: str | Path) -> Target:
    """A preset name or a path to a YAML file."""

    return resolve(spec)


def summary_text(p: CompiledProgram) -> str:
    """A short human-readable compile summary."""

    r = p.report
    lines = [f"thermohw compile: {p.source.n_units}-unit model -> target {p.target.name} ({p.target.kind})",
             f"source model hash {r.get('source_hash')}"]
    pl = r.get("placement", {})
    lines.append(f"couplings: {pl.get('couplings_in_model')} in model, {pl.get('couplings_pruned')} pruned "
                 f"({100 * pl.get('pruned_abs_J_fraction', 0):.2f} % of sum |J|), {r.get('realised_couplings')} realised")
    sc, qu = r.get("scale", {}), r.get("quantise", {})
    lines.append(f"couplings: {qu.get('coupling_bits')} bits over +-{sc.get('coupling_full_scale', 0):.4g} "
                 f"(LSB {qu.get('coupling_lsb', 0):.3g}), {sc.get('couplings_clipped')} clipped, "
                 f"{qu.get('couplings_rounded_to_zero')} rounded to zero")
    lines.append(f"biases: {qu.get('bias_bits')} bits over +-{sc.get('bias_full_scale', 0):.4g} "
                 f"(LSB {qu.get('bias_lsb', 0):.3g}), {sc.get('biases_clipped')} clipped")
    for k, e in r.get("errors", {}).items():
        if e["max_abs"] > 0:
            lines.append(f"error {k:>3}: max {e['max_abs']:.3g}, rms {e['rms']:.3g} ({100 * e['rms_relative']:.2f} % rms)")
    if "energy_per_model_unit_J" in p.scales:
        e = p.scales["energy_per_model_unit_J"]
        lines.append(f"energy scale: 1 model unit = {eng_unit(e, 'J')}; "
                     f"1 kT = {eng_unit(p.scales.get('kT_J', 0), 'J')} (T_eff = {p.scales.get('T_eff_K', 0):.4g} K)")
    for k, v in p.scales.items():
        if k not in ("energy_per_model_unit_J", "kT_J", "T_eff_K") and isinstance(v, (int, float)):
            lines.append(f"  {k} = {v:.6g}")
    v = r.get("violations", [])
    lines.append(f"violations: {len(v)}")
    lines += [f"  [{x['check']}] {x['message']}" for x in v]
    return "\n".join(lines) + "\n"


def _provenance(opts: "CompileOptions") -> dict:
    return provenance(seeds={"rounding": opts.seed, "netlist": opts.netlist_seed})
