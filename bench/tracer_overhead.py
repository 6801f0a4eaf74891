"""Overhead of the bnlint runtime tracer on CPU, traced vs untraced, interleaved.

Two workloads:
- a ResNet-18-shaped network (BasicBlock x [2, 2, 2, 2], 20 BatchNorm2d layers) built
  here: a training step (forward, backward, SGD step) and an eval forward;
- a small MLP with BatchNorm1d, where hook cost is proportionally largest: reported
  also as microseconds of overhead per BatchNorm call.

Each round times a block of untraced and a block of traced iterations (the order
alternates between rounds); the figure is the median of the per-round ratios. Both the
wall-clock time and the CPU time of the benchmarking thread (`time.thread_time`) are
measured: on a shared machine the CPU time is the steadier figure (other processes'
load stretches wall time, not this thread's CPU time).

    .venv/bin/python bench/tracer_overhead.py [--rounds 9] [--iterations 5] [--threads 1]
        [--only resnet|mlp] [--eval-once]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import bnlint


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18Shape(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(
                nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width, 1))
            )
            cin = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def mlp() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(3):
        layers += [nn.Linear(width, 128), nn.BatchNorm1d(128), nn.ReLU()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        model.train()
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def eval_forward(model: nn.Module, x: torch.Tensor, eval_once: bool = False) -> Callable[[], None]:
    """`model.eval()` then a no-grad forward; with `eval_once`, `model.eval()` at the
    first call only (the warm-up): the tracer's cost on the forward alone."""
    evaluated = False

    def forward() -> None:
        nonlocal evaluated
        if not (eval_once and evaluated):
            model.eval()
            evaluated = True
        with torch.no_grad():
            model(x)

    return forward


# One tracer for the whole run, started and stopped around each traced block: the
# figures are steady-state (a module's first traced forward names it and reads its
# running variance once; that one-time cost is in the warm-up).
TRACER = bnlint.trace()


def _block(work: Callable[[], None], iterations: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(iterations):
        work()
    return (
        (time.perf_counter() - wall) / iterations,
        (time.thread_time() - cpu) / iterations,
    )


def timed(work: Callable[[], None], iterations: int, traced: bool) -> tuple[float, float]:
    """(wall seconds, thread CPU seconds) per iteration."""
    if traced:
        with TRACER:
            return _block(work, iterations)
    return _block(work, iterations)


def compare(
    name: str, work: Callable[[], None], rounds: int, iterations: int, bn_calls: int
) -> str:
    work()
    timed(work, 1, traced=True)  # warm up both paths
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    plain_times: list[float] = []
    traced_times: list[float] = []
    plain_cpu: list[float] = []
    traced_cpu: list[float] = []
    for round_ in range(rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        result = {traced: timed(work, iterations, traced) for traced in order}
        plain_times.append(result[False][0])
        traced_times.append(result[True][0])
        plain_cpu.append(result[False][1])
        traced_cpu.append(result[True][1])
        ratios.append(result[True][0] / result[False][0])
        cpu_ratios.append(result[True][1] / result[False][1])
    plain, traced = statistics.median(plain_times), statistics.median(traced_times)
    cpu_plain, cpu_traced = statistics.median(plain_cpu), statistics.median(traced_cpu)
    overhead = (statistics.median(ratios) - 1) * 100
    cpu_overhead = (statistics.median(cpu_ratios) - 1) * 100
    per_bn = (cpu_traced - cpu_plain) / bn_calls * 1e6
    return (
        f"| {name} | {plain * 1e3:.2f} ms | {traced * 1e3:.2f} ms | {overhead:+.1f}% "
        f"| {cpu_plain * 1e3:.2f} ms | {cpu_traced * 1e3:.2f} ms | {cpu_overhead:+.1f}% "
        f"| {per_bn:+.1f} µs |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image", type=int, default=64, help="ResNet input size")
    parser.add_argument("--batch", type=int, default=8, help="ResNet batch size")
    parser.add_argument("--only", choices=["resnet", "mlp"], help="one workload family only")
    parser.add_argument(
        "--eval-once",
        action="store_true",
        help="eval forward without `model.eval()` per iteration (the forward's cost alone)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    resnet = ResNet18Shape()
    x = torch.randn(args.batch, 3, args.image, args.image)
    y = torch.randint(0, 10, (args.batch,))
    net = mlp()
    xm, ym = torch.randn(32, 64), torch.randint(0, 10, (32,))
    resnet_bns = sum(isinstance(m, nn.BatchNorm2d) for m in resnet.modules())
    mlp_bns = sum(isinstance(m, nn.BatchNorm1d) for m in net.modules())

    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.rounds} rounds")
    print(
        "| workload | wall untraced | wall traced | wall overhead | CPU untraced "
        "| CPU traced | CPU overhead | CPU per BN call |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, work, bns, iterations in (
        (
            f"ResNet-18 shape train step ({args.batch}x3x{args.image}²)",
            train_step(resnet, x, y),
            resnet_bns,
            args.iterations,
        ),
        (
            f"ResNet-18 shape eval forward ({args.batch}x3x{args.image}²)",
            eval_forward(resnet, x, args.eval_once),
            resnet_bns,
            args.iterations,
        ),
        (
            "MLP BatchNorm1d train step (32x64)",
            train_step(net, xm, ym),
            mlp_bns,
            args.iterations * 40,
        ),
        (
            "MLP BatchNorm1d eval forward (32x64)",
            eval_forward(net, xm, args.eval_once),
            mlp_bns,
            args.iterations * 40,
        ),
    ):
        if args.only and not name.lower().startswith(args.only):
            continue
        print(compare(name, work, args.rounds, iterations, bns), flush=True)


if __name__ == "__main__":
    main()
