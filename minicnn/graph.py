"""A picture of one training step as a graph, from a :class:`~minicnn.trace.Trace`: the layers as boxes from the
input down to the loss; forward edges (left, downwards) labelled with the activation each layer hands on, backward
edges (right, upwards) with the gradient dX it hands back; beside each layer with weights, the weights' shapes and
their gradients dW.

    >>> model.trace(x, y).plot_graph("graph.png")        # doctest: +SKIP

:func:`graph_layout` computes what is drawn (boxes, edges, labels, positions) without drawing, so it can be tested.
"""

from __future__ import annotations

from .figures import new_figure, save_figure

ROW = 1.0  # vertical distance between two boxes
FORWARD_X, NODE_X, BACKWARD_X, PARAM_X = 0.30, 0.50, 0.70, 0.93


def _shape(shape) -> str:
    return "(" + ", ".join("N" if k == 0 else str(d) for k, d in enumerate(shape)) + ")" if shape else "?"


def graph_layout(trace) -> dict:
    """What :func:`plot_graph` draws, as data: ``{"nodes": [...], "edges": [...], "params": [...]}``.

    nodes: ``{"name", "type", "label", "y"}`` from the input (top) to the loss (bottom); edges: ``{"kind":
    "forward" | "backward", "src", "dst", "label"}`` (a forward label is the activation's shape, a backward label
    the gradient's, with N the batch); params: ``{"layer", "label", "y"}``, one per layer with trainable weights,
    e.g. ``"kernel (5, 5, 1, 32)  dW (5, 5, 1, 32)"``. Shapes come from the trace (so from the model)."""
    n = trace.batch_size
    first = trace.forward[0]
    nodes = [{"name": "input", "type": "images", "label": f"input X {_shape(first['input_shape'])}"}]
    for r in trace.forward:
        label = f"{r['layer']} ({r['type']})"
        nodes.append(
            {
                "name": r["layer"],
                "type": r["type"],
                "label": label if len(label) <= 30 else f"{r['layer']}\n({r['type']})",
            }
        )
    loss = trace.loss_info or {}
    nodes.append({"name": "loss", "type": "loss", "label": f"loss {loss.get('name', '')}\nL = {trace.loss:.4f}"})
    for k, node in enumerate(nodes):
        node["y"] = -k * ROW
    edges = []
    for k, r in enumerate(trace.forward):
        edges.append(
            {
                "kind": "forward",
                "src": nodes[k]["name"],
                "dst": r["layer"],
                "label": ("X " if k == 0 else "") + _shape(r["input_shape"]),
            }
        )
    edges.append(
        {
            "kind": "forward",
            "src": trace.forward[-1]["layer"],
            "dst": "loss",
            "label": f"P {_shape(trace.forward[-1]['output_shape'])}",
        }
    )
    by_layer = {r["layer"]: r for r in trace.backward}
    start = "dZ" if loss.get("gradient_formula", "").startswith("dL/dZ") else "dP"
    edges.append(
        {
            "kind": "backward",
            "src": "loss",
            "dst": trace.forward[-1]["layer"],
            "label": f"{start} {_shape(loss.get('gradient_shape') or trace.forward[-1]['output_shape'])}",
        }
    )
    for k in range(len(trace.forward) - 1, -1, -1):
        r = by_layer[trace.forward[k]["layer"]]
        shape = r["grad_input_shape"]
        edges.append(
            {
                "kind": "backward",
                "src": r["layer"],
                "dst": nodes[k]["name"],
                "label": f"dX {_shape(shape)}" if shape else "dX not computed",
            }
        )
    params = []
    for node in nodes:
        mine = [p for p in trace.params if p["name"].split("/")[0] == node["name"]]
        if mine:
            text = "\n".join(
                f"{p['name'].split('/')[-1]:<6} {tuple(p['shape'])}   d{_grad_symbol(p['name'])} {tuple(p['shape'])}"
                for p in mine
            )
            params.append({"layer": node["name"], "label": text, "y": node["y"]})
    return {"nodes": nodes, "edges": edges, "params": params, "batch_size": n}


def _grad_symbol(name: str) -> str:
    kind = name.split("/")[-1]
    return {"kernel": "W", "bias": "b", "gamma": "gamma", "beta": "beta"}.get(kind, kind)


def graph_figure(trace):
    """The matplotlib Figure of :func:`graph_layout` (boxes, arrows and their labels)."""
    from matplotlib.patches import FancyBboxPatch

    layout = graph_layout(trace)
    nodes = layout["nodes"]
    y_of = {node["name"]: node["y"] for node in nodes}
    fig = new_figure(11, 0.75 * len(nodes) + 1.2)
    ax = fig.add_axes((0, 0, 1, 0.94))
    ax.set_xlim(0, 1.12)
    ax.set_ylim(nodes[-1]["y"] - 0.6, 0.6)
    ax.axis("off")
    colours = {"images": "#e8e8e8", "loss": "#ffd8b0", "Conv2D": "#cfe2ff", "Dense": "#d6f5d6"}
    for node in nodes:
        ax.add_patch(
            FancyBboxPatch(
                (NODE_X - 0.11, node["y"] - 0.22),
                0.22,
                0.44,
                boxstyle="round,pad=0.01",
                facecolor=colours.get(node["type"], "#f4f0ff"),
                edgecolor="#444444",
            )
        )
        ax.text(NODE_X, node["y"], node["label"], ha="center", va="center", fontsize=8.5)
    for edge in layout["edges"]:
        y0, y1 = y_of[edge["src"]], y_of[edge["dst"]]
        forward = edge["kind"] == "forward"
        x = FORWARD_X + 0.085 if forward else BACKWARD_X - 0.085
        style = {
            "color": "#1f5fbf" if forward else "#c0392b",
            "lw": 1.4,
            "linestyle": "--" if "not computed" in edge["label"] else "-",
        }
        ax.annotate(
            "",
            xy=(x, y1 + (0.24 if forward else -0.24)),
            xytext=(x, y0 - (0.24 if forward else -0.24)),
            arrowprops={"arrowstyle": "-|>", **style},
        )
        ax.text(
            x - 0.012 if forward else x + 0.012,
            (y0 + y1) / 2,
            edge["label"],
            ha="right" if forward else "left",
            va="center",
            fontsize=8,
            color=style["color"],
        )
    for p in layout["params"]:
        ax.text(
            PARAM_X,
            p["y"],
            p["label"],
            ha="left",
            va="center",
            fontsize=7.5,
            family="monospace",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "#fff8dc", "edgecolor": "#b8a050"},
        )
        ax.annotate(
            "",
            xy=(PARAM_X - 0.005, p["y"]),
            xytext=(NODE_X + 0.11, p["y"]),
            arrowprops={"arrowstyle": "-", "color": "#b8a050", "lw": 1},
        )
    fig.suptitle(
        f"One training step on a batch of N = {layout['batch_size']}: forward (blue, down: activations), "
        "backward (red, up: gradients dX), weights and their gradients dW (right)",
        fontsize=10,
    )
    return fig


def plot_graph(trace, path):
    """:func:`graph_figure` written as a PNG at ``path``. Returns ``path``."""
    return save_figure(graph_figure(trace), path)
