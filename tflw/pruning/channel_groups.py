"""Which output channels of a model can be removed together, and where their masks go.

A channel made by a Conv2D/Dense flows through BatchNorm, activations, pooling, padding
and depthwise convolutions unchanged, and is read by the next Conv2D/Dense. An Add ties
the channels of all its inputs: they are pruned together (one group, one mask). A group
is left whole when any tensor of it reaches a layer that mixes channels in another way
(Concatenate, Flatten, Reshape, a model output, an activation with f(0) != 0), or when
one of its producers is excluded from pruning.

A mask goes after the last per-channel affine layer of each block (conv, or its
BatchNorm; a depthwise conv, or its BatchNorm): then a pruned channel is exactly zero
everywhere downstream, and cutting it out changes nothing.
"""

from dataclasses import dataclass, field
from typing import Optional

from tflw.model_graph import Graph, Step

PRODUCERS = ("Conv2D", "Dense")
PASS_THROUGH = ("BatchNormalization", "ReLU", "Activation", "Dropout", "MaxPooling2D",
                "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                "ZeroPadding2D", "DepthwiseConv2D")
AFFINE = ("BatchNormalization", "DepthwiseConv2D")  # add a per-channel constant
ZERO_PRESERVING = ("linear", "relu", "relu6", "tanh", "swish", "silu", "gelu", "elu",
                   "selu", "leaky_relu", "hard_swish", "hard_silu")


@dataclass
class ChannelGroup:
    """Blocks whose output channels are pruned together.

    Attributes:
        name: the group's name (its first producer's).
        masked: layer name -> name of the Conv2D/Dense that scores it (None: a follower).
        frozen: why the group must stay whole, or None.
    """

    name: str
    masked: dict = field(default_factory=dict)
    frozen: Optional[str] = None


def _activation(layer) -> str:
    config = layer.get_config()
    if type(layer).__name__ == "ReLU":
        return "relu" if not config.get("negative_slope") and not config.get("threshold") else "leaky_relu"
    activation = config.get("activation", "linear")
    return activation if isinstance(activation, str) else "custom"


class _Spaces:
    """Union-find over channel spaces; each tensor key belongs to one."""

    def __init__(self):
        self.parent: dict = {}
        self.frozen: dict = {}
        self.of: dict = {}

    def new(self, key, frozen: Optional[str] = None) -> int:
        space = len(self.parent)
        self.parent[space] = space
        if frozen:
            self.frozen[space] = frozen
        self.of[key] = space
        return space

    def root(self, space: int) -> int:
        while self.parent[space] != space:
            space = self.parent[space]
        return space

    def join(self, a: int, b: int) -> int:
        a, b = self.root(a), self.root(b)
        if a != b:
            self.parent[b] = a
            if b in self.frozen:
                self.frozen.setdefault(a, self.frozen[b])
        return a

    def freeze(self, key, reason: str) -> None:
        self.frozen.setdefault(self.root(self.of[key]), reason)


def _single_consumer(graph: Graph, key) -> Optional[Step]:
    consumers = graph.consumers(key)
    return graph.steps[consumers[0]] if len(consumers) == 1 and not graph.is_output(key) else None


def _block_end(graph: Graph, step: Step) -> Step:
    """The step after which a block's mask goes: its BatchNorm when one follows alone."""
    consumer = _single_consumer(graph, step.outputs[0])
    if consumer is not None and type(consumer.layer).__name__ == "BatchNormalization":
        return consumer
    return step


def channel_groups(graph: Graph, prunable: set) -> list:
    """The channel groups of `graph`; producers outside `prunable` (layer names) freeze theirs."""
    spaces = _Spaces()
    for key in graph.inputs:
        spaces.new(key, "it carries the model input")
    blocks = []  # (space, step that starts the block, scoring producer name or None)
    absorbed = set()
    for step in graph.steps:
        layer, kind = step.layer, type(step.layer).__name__
        if kind in PRODUCERS:
            frozen = None if layer.name in prunable else f"'{layer.name}' is not pruned"
            if layer.get_config().get("groups", 1) > 1:  # channels tied to their group
                frozen = f"'{layer.name}' is a grouped convolution"
                spaces.freeze(step.inputs[0], frozen)
            space = spaces.new(step.outputs[0], frozen)
            blocks.append((space, step, layer.name))
        elif kind in PASS_THROUGH:
            space = spaces.root(spaces.of[step.inputs[0]])
            spaces.of[step.outputs[0]] = space
            if kind in ("ReLU", "Activation") and _activation(layer) not in ZERO_PRESERVING:
                spaces.freeze(step.inputs[0], f"'{layer.name}' maps 0 to a non-zero value")
            if kind == "DepthwiseConv2D" and layer.get_config()["depth_multiplier"] != 1:
                spaces.freeze(step.inputs[0], f"'{layer.name}' has depth_multiplier > 1")
            if kind in AFFINE and id(step) not in absorbed:
                blocks.append((space, step, None))
        elif kind == "Add":
            space = spaces.of[step.inputs[0]]
            for key in step.inputs[1:]:
                space = spaces.join(space, spaces.of[key])
            spaces.of[step.outputs[0]] = space
        else:
            for key in step.inputs:
                spaces.freeze(key, f"'{layer.name}' ({kind}) mixes channels")
            for key in step.outputs:
                spaces.new(key, f"'{layer.name}' ({kind}) output")
            continue
        if kind in PRODUCERS + ("DepthwiseConv2D",):
            end = _block_end(graph, step)
            if end is not step:
                absorbed.add(id(end))
    for key in graph.outputs:
        spaces.freeze(key, "it is a model output")

    groups: dict = {}
    for space, step, scored_by in blocks:
        root = spaces.root(space)
        group = groups.setdefault(root, ChannelGroup(name=scored_by or step.layer.name,
                                                     frozen=spaces.frozen.get(root)))
        group.masked[_block_end(graph, step).layer.name] = scored_by
    return list(groups.values())
