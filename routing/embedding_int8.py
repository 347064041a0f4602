"""MiniLM with int8 Linear layers (dynamic quantization after SmoothQuant-style smoothing).

Why: on this 2-core machine one fp32 embedding of a short prompt took 15-20 ms, most of the
semantic cache's 15 ms budget; int8 matrix products (fbgemm, VNNI) make it 3-3.5x faster.

Why smoothing: plain dynamic quantization scales each layer's input by its largest value, and
BERT's inputs to some layers (after LayerNorm, after GELU) have a few channels far larger than
the rest, so the other channels lose their precision: vectors moved to cosine 0.95 on average
against fp32 (0.87 at worst) on the shared paraphrase prompts. Dividing each input channel by
s = max|x|^a / max|W|^(1-a) and multiplying the weight's column by s leaves the product unchanged
in exact arithmetic and spreads the range between activations and weights (Xiao et al. 2023,
SmoothQuant). With a = 0.7 and per-channel weights: cosine 0.994 mean, 0.97 worst against fp32.
Also measured, side by side on 300 shared paraphrase prompts (load average ~3): per-channel weights
without smoothing 0.979 mean / 0.95 worst; a = 0.5 0.93 mean; a = 0.85 0.996 mean but 0.955 worst;
only the attention layers in int8 0.997 mean but 1.3x faster instead of 3.5x; the whole model in
bf16 (AVX512-BF16) 0.99996 but only 1.6x faster; two torch threads slower than one under load.
The scales come from a fixed calibration set written here (no data set at run time), so every
process builds the same model and stores comparable vectors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

SMOOTHING_ALPHA = 0.7
# Short and long, questions and instructions, code, numbers, several languages: the shapes of
# requests the gateway sees. Only activation ranges are taken from them, per input channel.
CALIBRATION_TEXTS = (
    "How do I reset my password if I no longer have access to my email?",
    "What is the capital of Australia?",
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "Explain the difference between a process and a thread in an operating system.",
    "Translate 'good morning, how are you?' into French and Spanish.",
    "Summarize the following paragraph in two sentences: The committee met on Tuesday to review "
    "the budget for the coming year, and after a long debate it approved a 4% increase in spending "
    "on schools while cutting the road maintenance budget by 12 million dollars.",
    "Janet has 16 eggs. She eats 3 for breakfast and bakes muffins with 4. She sells the rest at $2 "
    "each. How much money does she make every day?",
    "Which of the following is NOT a prime number?\nA. 2\nB. 3\nC. 5\nD. 9\nAnswer:",
    "Enable two-factor authentication on my account.",
    "Disable the nightly backup job on the staging server.",
    "SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 10;",
    "Why does my Docker container exit immediately with code 137?",
    "Can you recommend a good book about the history of the Roman Empire?",
    "What are the side effects of ibuprofen, and how much can an adult take in one day?",
    "Le chat dort sur le canapé depuis ce matin.",
    "Wie spät ist es in Tokio, wenn es in Berlin 15 Uhr ist?",
    "東京は日本の首都です。",
    "The mitochondria is the powerhouse of the cell; describe its role in ATP synthesis.",
    "A train leaves at 9:45 and travels 180 km at 72 km/h. When does it arrive?",
    "Is it safe to delete the files in /tmp while the system is running?",
    "hi",
    "Thanks!",
    "Compare the economic policies of the New Deal with those of the Great Society.",
    "Refactor this code to remove the duplicated branches: if x > 0: y = f(x) else: y = f(-x)",
)


class _Smoothed:
    """Builds the smoothing wrapper lazily so that this module imports without torch."""

    @staticmethod
    def wrap(linear: Any, scale: Any) -> Any:
        import torch

        class SmoothedLinear(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("inverse_scale", 1.0 / scale)
                self.linear = linear

            def forward(self, x: Any) -> Any:
                return self.linear(x * self.inverse_scale)

        return SmoothedLinear()


def _input_ranges(bert: Any, encode_ids: Callable[[str], list[int]]) -> dict[str, Any]:
    """Largest |input| per channel of every Linear over the calibration texts (one text at a time,
    as the encoder runs: no padding in the ranges)."""
    import torch

    linears = {name: module for name, module in bert.named_modules() if isinstance(module, torch.nn.Linear)}
    ranges = {name: torch.zeros(module.in_features) for name, module in linears.items()}

    def hook(name: str) -> Callable[..., None]:
        def record(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            flat = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1])
            ranges[name] = torch.maximum(ranges[name], flat.amax(dim=0))

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in linears.items()]
    try:
        with torch.inference_mode():
            for text in CALIBRATION_TEXTS:
                bert(input_ids=torch.tensor([encode_ids(text)], dtype=torch.int64))
    finally:
        for handle in handles:
            handle.remove()
    return ranges


def smoothed_copy(bert: Any, encode_ids: Callable[[str], list[int]], alpha: float = SMOOTHING_ALPHA) -> Any:
    """A copy of `bert` whose Linear layers divide their input by s and carry W * s: the same
    function in fp32 (up to rounding), with ranges that int8 can hold."""
    import torch

    bert = copy.deepcopy(bert).eval()
    ranges = _input_ranges(bert, encode_ids)
    with torch.no_grad():
        for name, activation_range in ranges.items():
            linear = bert.get_submodule(name)
            weight_range = linear.weight.abs().amax(dim=0).clamp(min=1e-5)
            scale = (activation_range.clamp(min=1e-5) ** alpha / weight_range ** (1 - alpha)).clamp(min=1e-5)
            linear.weight.mul_(scale)
            parent, _, attribute = name.rpartition(".")
            setattr(bert.get_submodule(parent), attribute, _Smoothed.wrap(linear, scale))
    return bert


def quantized_copy(bert: Any, encode_ids: Callable[[str], list[int]], alpha: float = SMOOTHING_ALPHA) -> Any:
    """A smoothed copy of `bert` with int8 weights (per output channel) and int8 inputs scaled at
    run time, per call (the original is left as it is)."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    smoothed = smoothed_copy(bert, encode_ids, alpha)
    return quantize_dynamic(smoothed, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
