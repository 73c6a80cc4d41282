"""PyTorch side by side: the same network in ``torch.nn``, holding minicnn's weights, to compare with autograd.

minicnn is NHWC with Keras's weight layouts; PyTorch is NCHW with its own::

    Conv2D kernel (KH, KW, C, F)   ->  nn.Conv2d weight (F, C, KH, KW)     kernel.transpose(3, 2, 0, 1)
    Dense kernel (in, out)         ->  nn.Linear weight (out, in)          kernel.T
    Flatten in (H, W, C) order     ->  permute NCHW -> NHWC, then flatten  (else the Dense rows are shuffled)

:class:`TorchTwin` takes NHWC batches (it permutes them to NCHW once) and returns LOGITS: PyTorch leaves the last
softmax to the loss (``F.cross_entropy``), where minicnn keeps it in the model and fuses its gradient with the
loss's (``(P - Y) / N``). Dropout is kept as ``nn.Dropout``; compare in eval mode (the two frameworks draw different
masks). Needs PyTorch: ``pip install 'minicnn[torch]'``.

Example::

    twin = TorchTwin(model)                       # model: a built minicnn Sequential (e.g. float64)
    logits = twin(torch.from_numpy(x))            # x: (N, H, W, C)
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)).backward()
    grads = twin.minicnn_gradients()              # numpy arrays, in model.trainable_weights' order and layouts
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn import functional
except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError(f"minicnn.torch_bridge needs PyTorch: pip install 'minicnn[torch]' ({err})") from err

ACTIVATIONS = {"linear": None, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def conv_kernel_to_torch(kernel):
    """(KH, KW, C, F) -> (F, C, KH, KW)."""
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def conv_kernel_from_torch(weight):
    """(F, C, KH, KW) -> (KH, KW, C, F)."""
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


class TorchTwin(nn.Module):
    """``model``'s layers as PyTorch modules, with copies of its weights (in ``dtype``, float64 by default).

    Supports Conv2D and MaxPooling2D (any padding: added by ``F.pad`` where minicnn's window places it, zeros or
    -inf), AveragePooling2D without padding, Dropout, Flatten and Dense; activations linear, relu, sigmoid,
    tanh, and softmax on the last layer only (left out: the twin returns logits). Anything else is a ValueError
    naming the layer."""

    def __init__(self, model, dtype=torch.float64):
        super().__init__()
        self.steps = []  # (minicnn layer, torch module or None), in order
        self.params_in_order = []  # (torch parameter, convert back to minicnn's layout), trainable_weights' order
        self.torch_layers = nn.ModuleList()
        last = model.layers[-1]
        for layer in model.layers:
            module = self._module_for(layer, dtype, is_last=layer is last)
            if module is not None:
                self.torch_layers.append(module)
            self.steps.append((layer, module))

    def _module_for(self, layer, dtype, is_last):
        kind = type(layer).__name__
        activation = getattr(layer, "activation", "linear")
        if activation == "softmax" and not is_last:
            raise ValueError(f"TorchTwin: softmax is supported on the last layer only, not on {layer.name!r}")
        if activation not in ACTIVATIONS and activation != "softmax":
            raise ValueError(f"TorchTwin: layer {layer.name!r} has activation {activation!r}, not supported")
        if kind == "Conv2D":
            kh, kw, c, f = layer.params["kernel"].shape
            module = nn.Conv2d(c, f, (kh, kw), stride=layer.strides, bias=layer.use_bias, dtype=dtype)
            self._copy(module.weight, conv_kernel_to_torch(layer.params["kernel"]), conv_kernel_from_torch)
        elif kind == "Dense":
            d, u = layer.params["kernel"].shape
            module = nn.Linear(d, u, bias=layer.use_bias, dtype=dtype)
            self._copy(module.weight, layer.params["kernel"].T, lambda w: np.ascontiguousarray(w.T))
        elif kind == "MaxPooling2D":
            return nn.MaxPool2d(layer.pool_size, layer.strides)
        elif kind == "AveragePooling2D" and not layer.window.padded:  # padded: it divides by the real cells only
            return nn.AvgPool2d(layer.pool_size, layer.strides)
        elif kind == "Dropout":
            return nn.Dropout(layer.rate)
        elif kind == "Flatten":
            return None
        else:
            raise ValueError(
                f"TorchTwin: layer {layer.name!r} ({kind}, padding "
                f"{getattr(layer, 'padding', None)!r}) has no PyTorch counterpart here"
            )
        if layer.use_bias:
            self._copy(module.bias, layer.params["bias"], np.array)
        return module

    def _copy(self, parameter, value, back):
        with torch.no_grad():
            parameter.copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
        self.params_in_order.append((parameter, back))

    def forward(self, x_nhwc):
        """Logits for an NHWC batch (a tensor)."""
        x = x_nhwc.permute(0, 3, 1, 2)  # NHWC -> NCHW, PyTorch's layout
        for layer, module in self.steps:
            kind = type(layer).__name__
            if kind == "Flatten":
                x = x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)  # (H, W, C) order
                continue
            win = getattr(layer, "window", None)
            if win is not None and win.padded:  # minicnn's (possibly uneven) padding; max-pooling pads with -inf
                fill = float("-inf") if kind == "MaxPooling2D" else 0.0
                x = functional.pad(x, (win.pad_left, win.pad_right, win.pad_top, win.pad_bottom), value=fill)
            x = module(x)
            act = ACTIVATIONS.get(getattr(layer, "activation", "linear"))
            if act is not None:
                x = act(x)
        return x

    def minicnn_gradients(self) -> list:
        """Each parameter's ``.grad`` as a NumPy array in minicnn's layout, in ``model.trainable_weights``' order."""
        return [back(p.grad.detach().cpu().numpy()) for p, back in self.params_in_order]


def compare_step(model, x, y, twin=None):
    """One loss-and-gradients computation on ``(x, y)`` (one-hot) in minicnn and, with autograd, in its
    :class:`TorchTwin` (dropout off in both). Returns ``{name: relative error}`` for the probabilities, the loss,
    the input gradient and every parameter gradient, each ``||minicnn - torch|| / ||torch||``. ``twin``: a
    :class:`TorchTwin` of ``model`` to use (default: a fresh float64 one)."""
    twin = (TorchTwin(model, dtype=torch.float64) if twin is None else twin).eval()
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    logits = twin(xt)
    loss = functional.cross_entropy(logits, torch.from_numpy(np.asarray(y).argmax(axis=1)))
    loss.backward()
    be = model.backend
    xb, yb = model.prepare_inputs(x), model.prepare_targets(y, len(x))
    m_loss, _, probs, dx = model.forward_backward(xb, yb, training=False)
    ours = {"probabilities": be.to_numpy(probs), "loss": np.asarray(float(m_loss)), "input gradient": be.to_numpy(dx)}
    theirs = {
        "probabilities": torch.softmax(logits, dim=1).detach().numpy(),
        "loss": loss.detach().numpy(),
        "input gradient": xt.grad.numpy(),
    }
    names = [f"{layer.name}/{k}" for layer in model.layers for k in layer.weight_names(trainable=True)]
    ours.update(zip(names, (be.to_numpy(g) for g in model.gradients)))
    theirs.update(zip(names, twin.minicnn_gradients()))
    return {name: float(np.linalg.norm(ours[name] - theirs[name]) / np.linalg.norm(theirs[name])) for name in ours}
