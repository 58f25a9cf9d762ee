"""The block-kind registry: every kind of block, and every attention kind, declared once by name.

A *block kind* is a :class:`BlockKind` subclass registered with :func:`register_block`. Its one
declaration says everything the engine derives from it:

* the stage choices it adds (:class:`ChoiceSpec`: arch field, YAML key, label, defaults, check)
  and its fixed settings (:class:`SettingSpec`), plus any cross-key check (:meth:`check_stage`);
* its layer record, built from a :class:`LayerContext` (input side and channels, stage width,
  stride, the layer's choice values, the stage's settings) by :meth:`BlockKind.layer` -- and, for
  a stage kind opening each stage with another layer (the transformer's downsampling MBConv),
  :meth:`BlockKind.entry_layer`;
* its operator-graph nodes (:meth:`BlockKind.graph`) -- of the block as exported, after its
  deploy step, since that is what runs on a device and what published sizes count -- where
  nodes that a latency predictor must time as one piece are marked as a *unit* with its
  features (``with b.unit(...)``);
* its keys in published latency tables, when a table covers it (:meth:`BlockKind.table_keys`);
* its torch half: the static module, the elastic twin the supernet holds, an optional deploy
  step applied to exported models, and the standalone modules of its units. These are named by
  reference (``"package.module:attribute"``) and imported on first use, so that declaring and
  searching a space never imports torch; a kind defined outside the package may also give the
  classes themselves.

Attention kinds (:class:`AttentionKind`, :func:`register_attention`) plug into the transformer
kind: the nodes of their core (scores to context) and the function computing it.

This module imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from nas import arch as _arch
from nas.grammar import SpaceError

if TYPE_CHECKING:
    from nas.graph import GraphBuilder

#: What a kind may be: the stem, the layers of a stage (chosen by a stage's ``kind`` or
#: ``blocks``), the head, or only the layer opening stages of other kinds (their ``entry_layer``).
ROLES = ("stem", "stage", "head", "entry")

Layer = Any  # a frozen dataclass with slot, in_hw, out_hw, in_ch, out_ch (see LayerRecord)


@dataclass(frozen=True)
class ChoiceSpec:
    """A choice a stage kind adds to the arch.

    ``name`` is the arch field (``kernel``), ``key`` the YAML key of its allowed values
    (``kernels``), ``label`` its prefix in ``nas inspect`` (``k``). When the key is absent the
    stage takes ``default``; without a default the key is required unless ``optional`` (the kind
    then derives the value, as the transformer derives heads from width / head_dim). ``check``
    validates the declared values (``(values, where) -> None``, raising :class:`SpaceError`).
    """

    name: str
    key: str
    label: str = ""
    default: tuple[Any, ...] = ()
    optional: bool = False
    check: Callable[[tuple[Any, ...], str], None] | None = None


@dataclass(frozen=True)
class SettingSpec:
    """A fixed setting of a stage kind: YAML key (also the attribute of the stage), default and
    parser (``(value, where) -> value``, raising :class:`SpaceError`)."""

    name: str
    default: Any
    parse: Callable[[Any, str], Any]


class LayerContext(NamedTuple):
    """What a layer of a slot is built from: where it sits, what feeds it, its choices."""

    slot: str
    side: int  # input feature-map side
    in_ch: int
    out_ch: int  # the stage width (the classes for the head)
    stride: int
    spec: Any  # the StageSpec (or StemSpec, HeadSpec) with the kind's settings
    values: Mapping[str, Any] = {}  # the layer's choice values  # noqa: RUF012
    index: int = 0  # layer index in its stage


def resolve(ref: Any) -> Any:
    """A torch-half reference: ``"package.module:attribute"`` imported now, or the object itself."""
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


class BlockKind:
    """A kind of block. Subclass, fill in the class attributes and methods, and register it with
    :func:`register_block`; see ``nas/blocks/mbconv.py`` for a complete example."""

    name: ClassVar[str]
    #: One of :data:`ROLES`.
    role: ClassVar[str] = "stage"
    #: Other names a space file may use for it (``conv`` for ``mbconv``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: The layer record (frozen dataclass) its :meth:`layer` returns.
    layer_type: ClassVar[type]
    #: Other layer records of this kind (a kind whose layers take several forms).
    other_layer_types: ClassVar[tuple[type, ...]] = ()
    choices: ClassVar[tuple[ChoiceSpec, ...]] = ()
    settings: ClassVar[tuple[SettingSpec, ...]] = ()
    #: Least number of layers a stage of this kind may have.
    min_depth: ClassVar[int] = 1
    #: Name of the slot of a layer opening each stage (``stages.i.<entry>``), if any.
    entry: ClassVar[str | None] = None
    #: Choices of the stage the entry layer reads (when the stage declares them).
    entry_choices: ClassVar[tuple[str, ...]] = ()
    #: A tiny stage of this kind (YAML mapping; for a stem or head kind, the space's ``stem`` or
    #: ``head`` mapping): docs, and the conformance suite every kind passes.
    example: ClassVar[Mapping[str, Any] | None] = None

    # torch half, by reference or given directly
    #: ``(layer) -> nn.Module`` computing one layer with standard torch layers.
    static: ClassVar[Any] = None
    #: ``(largest_layer, spec) -> nn.Module`` holding the largest weights of a slot, with
    #: ``set_active(layer)`` selecting the layer ``forward`` computes and ``active_state()`` (or
    #: elastic children) giving the static module's tensors.
    elastic: ClassVar[Any] = None
    #: ``(module, layer) -> nn.Module`` applied to exported models (re-parameterisation); None:
    #: the module as trained. It may be given its own output again: return that unchanged.
    deploy: ClassVar[Any] = None
    #: Structural latency units this kind's graph marks: unit kind -> ``(spec, batch) ->
    #: (module, inputs)`` building the unit as a standalone module for timing.
    units: ClassVar[Mapping[str, Any]] = {}

    # ------------------------------------------------------------------ declaration

    def check_stage(self, choices: Mapping[str, tuple], settings: Mapping[str, Any], where: str):
        """Refuse combinations of keys that are each valid alone (raise :class:`SpaceError`);
        ``settings`` holds the stage's ``stride`` too."""

    def stage_entry(self, settings: Mapping[str, Any]) -> str | None:
        """The entry slot name of a stage of this kind with ``settings`` (:attr:`entry`, unless
        the settings leave the entry out)."""
        return self.entry

    def layer(self, ctx: LayerContext) -> Layer:
        """The layer record of a layer of this kind."""
        raise NotImplementedError

    def entry_layer(self, ctx: LayerContext) -> Layer:
        """The layer opening a stage of this kind (when :attr:`entry` is set)."""
        raise NotImplementedError

    def graph(self, b: GraphBuilder, layer: Layer, x: str) -> str:
        """Add the operator nodes of the layer's block as exported (after its deploy step) after
        node ``x``; return the output node."""
        raise NotImplementedError

    def table_keys(self, table: str, layer: Layer) -> list[str] | None:
        """The layer's keys in a published latency table (``pixel4``, ``note10``); None when the
        table does not cover this kind."""
        return None

    # ------------------------------------------------------------------ torch half

    # (read through the class: a function given directly must not become a bound method)

    def build_static(self, layer: Layer):
        return resolve(type(self).static)(layer)

    def build_elastic(self, layer: Layer, spec: Any):
        return resolve(type(self).elastic)(layer, spec)

    def deploy_module(self, module, layer: Layer):
        deploy = type(self).deploy
        return module if deploy is None else resolve(deploy)(module, layer)

    def __repr__(self) -> str:
        return f"<block kind {self.name!r}>"


class AttentionKind:
    """A kind of attention core for the transformer kind: the nodes from queries, keys and values
    to the heads' outputs, and the function computing it. Register with
    :func:`register_attention`; see ``nas/blocks/softmax.py``."""

    name: ClassVar[str]
    #: Whether the core adds the transformer's learned relative-position bias to its scores.
    position_bias: ClassVar[bool] = False
    #: Query channels per head (None: the layer's head_dim, as keys have).
    score_dim: ClassVar[int | None] = None
    #: ``(q, k, v, bias) -> out`` on (batch, heads, tokens, dim) tensors; ``bias`` is the
    #: (heads, tokens, tokens) position bias or None.
    core: ClassVar[Any] = None
    #: A tiny transformer stage using this attention: the conformance suite every kind passes.
    example: ClassVar[Mapping[str, Any] | None] = None

    @property
    def unit(self) -> str:
        """The latency unit of the core (``attn-<name>``)."""
        return f"attn-{self.name}"

    def graph(
        self, b: GraphBuilder, layer: Layer, q: str, k: str, v: str
    ) -> str:  # pragma: no cover - abstract
        """Add the core's nodes on queries ``q``, keys ``k`` and values ``v`` (shapes (heads,
        tokens, dim)); return the node of the heads' outputs (heads, tokens, v_dim)."""
        raise NotImplementedError

    def core_function(self) -> Callable:
        return resolve(type(self).core)

    def __repr__(self) -> str:
        return f"<attention kind {self.name!r}>"


#: Builds the standalone module of an attention core unit, whatever the attention kind.
ATTENTION_UNIT = "nas.blocks.nn.transformer:attention_core_kernel"

_KINDS: dict[str, BlockKind] = {}
_ALIASES: dict[str, str] = {}
_BY_LAYER: dict[type, BlockKind] = {}
_ATTENTIONS: dict[str, AttentionKind] = {}
_UNITS: dict[str, Any] = {}
_UNIT_NAMES: frozenset[str] = frozenset()


def _claim_unit(unit: str, builder: Any, owner: str) -> None:
    global _UNIT_NAMES
    if unit in _UNITS and _UNITS[unit][1] != owner:
        raise ValueError(f"latency unit {unit!r} is already declared by {_UNITS[unit][1]!r}")
    _UNITS[unit] = (builder, owner)
    _UNIT_NAMES = frozenset(_UNITS)


def register_block(cls: type[BlockKind]) -> type[BlockKind]:
    """Register a block kind (use as a class decorator). Names and aliases must be new."""
    kind = cls()
    if kind.role not in ROLES:
        raise ValueError(f"block kind {kind.name!r}: role {kind.role!r}; choices: {ROLES}")
    for name in (kind.name, *kind.aliases):
        owner = _ALIASES.get(name)
        if owner is not None and type(_KINDS[owner]).__qualname__ != cls.__qualname__:
            raise ValueError(f"block kind name {name!r} is already taken by {_KINDS[owner]!r}")
    _KINDS[kind.name] = kind
    for name in (kind.name, *kind.aliases):
        _ALIASES[name] = kind.name
    for layer_type in (kind.layer_type, *kind.other_layer_types):
        _BY_LAYER[layer_type] = kind
    for unit, builder in kind.units.items():
        _claim_unit(unit, builder, kind.name)
    for choice in kind.choices:
        _arch.register_choice(choice.name)
    return cls


def register_attention(cls: type[AttentionKind]) -> type[AttentionKind]:
    """Register an attention kind (use as a class decorator)."""
    kind = cls()
    owner = _ATTENTIONS.get(kind.name)
    if owner is not None and type(owner).__qualname__ != cls.__qualname__:
        raise ValueError(f"attention kind {kind.name!r} is already registered")
    _ATTENTIONS[kind.name] = kind
    _claim_unit(kind.unit, ATTENTION_UNIT, f"attention {kind.name}")
    return cls


def block_kind(name: str, where: str = "kind", role: str | None = None) -> BlockKind:
    """The kind registered under ``name`` (or an alias), of ``role`` if given;
    :class:`SpaceError` lists the names that would do."""
    kind = _KINDS.get(_ALIASES.get(name)) if isinstance(name, str) else None
    if kind is None or (role is not None and kind.role != role):
        names = sorted(_ALIASES) if role is None else kind_names(role)
        raise SpaceError(f"{where} = {name!r} is not allowed; choices: {names}")
    return kind


def block_kinds(role: str | None = None) -> list[BlockKind]:
    """Registered block kinds (of one role), in registration order."""
    return [k for k in _KINDS.values() if role is None or k.role == role]


def kind_names(role: str) -> list[str]:
    """Names and aliases of the kinds of a role, sorted."""
    return sorted(n for n, k in _ALIASES.items() if _KINDS[k].role == role)


def kind_of(layer: Layer) -> BlockKind:
    """The kind whose layer record ``layer`` is."""
    for cls in type(layer).__mro__:
        kind = _BY_LAYER.get(cls)
        if kind is not None:
            return kind
    raise TypeError(f"no block kind is registered for layer {layer!r}")


def attention_kind(name: str) -> AttentionKind:
    try:
        return _ATTENTIONS[name]
    except KeyError:
        raise SpaceError(
            f"attention = {name!r} is not registered; choices: {sorted(_ATTENTIONS)}"
        ) from None


def attention_names() -> list[str]:
    return list(_ATTENTIONS)


def attention_kinds() -> list[AttentionKind]:
    return list(_ATTENTIONS.values())


def unit_names() -> frozenset[str]:
    """Kinds of the structural latency units the registered kinds declare."""
    return _UNIT_NAMES


def unit_builder(unit: str) -> Callable:
    """``(spec, batch) -> (module, inputs)`` of a structural unit (imports its torch half)."""
    try:
        return resolve(_UNITS[unit][0])
    except KeyError:
        raise ValueError(f"no block kind declares latency unit {unit!r}") from None


def choice_spec(name: str) -> ChoiceSpec | None:
    """The declaration of an arch choice (the first kind declaring it)."""
    for kind in _KINDS.values():
        for choice in kind.choices:
            if choice.name == name:
                return choice
    return None
