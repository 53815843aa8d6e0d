using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Thermo.Trainer.Native;

/// <summary>One computation the self-check verifies: a module built from a fixed seed, run forward
/// and backward on a fixed input that <see cref="Input"/> makes after the check has seeded the generator
/// (normal noise of the module's input shape, or padded superpixel graphs for a graph network).</summary>
public sealed record SelfCheckCase(string Name, Func<Module<Tensor, Tensor>> Build, Func<Tensor> Input, bool InputGradient);

/// <summary>A quantity whose float32 value disagrees with its float64 reference.</summary>
public sealed record Discrepancy(string Case, string Quantity, double RelativeError)
{
    public override string ToString() =>
        $"{Quantity} of {Case} differs from its float64 reference by {(double.IsFinite(RelativeError) ? RelativeError.ToString("G2") : "a non-finite value")} (relative)";
}

/// <summary>What the self-check found.</summary>
public sealed record SelfCheckReport(IReadOnlyList<string> Cases, IReadOnlyList<Discrepancy> Failures, double WorstRelativeError, TimeSpan Elapsed)
{
    public bool Passed => Failures.Count == 0;
}

/// <summary>
/// Checks that this machine's native stack computes a model's forward and backward pass correctly,
/// before any weight is trusted to it: the float32 pass that training uses (whatever kernels libtorch
/// picks here) against the same module, weights and input in float64, which ATen computes with its
/// own reference kernels (oneDNN has no float64 convolution). Every output, the input's gradient and
/// every parameter's gradient must agree to <see cref="Tolerance"/> relative to the reference's norm.
///
/// Before each float32 pass the C heap is filled with freed NaN buffers (up to 4 MiB each, in the
/// calling thread's arena), so a kernel that reads memory it never wrote (the fault docs/NATIVE.md
/// traces) reads NaN rather than whatever was there: here that caught the fault in every run of the
/// check. Buffers larger than glibc's mmap threshold come fresh from the kernel and are not poisoned.
///
/// Models are checked in eval mode (dropout off, batch norm on its running statistics), where both
/// passes are deterministic; batch norm's training-mode kernels are not covered.
/// </summary>
public static class NumericsSelfCheck
{
    /// <summary>Largest accepted ‖float32 − float64‖ ÷ ‖float64‖ per quantity. Float32 rounding gives
    /// 1e-7 (fourconv) to 7e-4 (cifarnet's early gradients, 8 layers deep) on correct kernels, ATen and
    /// oneDNN alike; the faults seen give 0.19 to ∞.</summary>
    public const double Tolerance = 1e-2;

    /// <summary>The pass under test: the module's output, the input's gradient and each parameter's
    /// gradient for the loss Σ output · upstream, by name. Tests inject a wrong one.</summary>
    public delegate IReadOnlyDictionary<string, Tensor> Pass(Module<Tensor, Tensor> module, Tensor input, Tensor upstream, bool inputGradient);

    /// <summary>The pass training runs: autograd over the module as it is.</summary>
    public static IReadOnlyDictionary<string, Tensor> Autograd(Module<Tensor, Tensor> module, Tensor input, Tensor upstream, bool inputGradient)
    {
        var x = input.detach().clone().requires_grad_(inputGradient);
        foreach (var p in module.parameters()) p.grad = null;
        var output = module.forward(x);
        output.mul(upstream).sum().backward();
        var result = new Dictionary<string, Tensor> { ["output"] = output.detach() };
        // Evaluation runs without autograd, and ATen may pick other kernels then.
        using (no_grad()) result["output without autograd"] = module.forward(input.detach());
        if (inputGradient) result["input gradient"] = x.grad!.detach();
        foreach (var (name, p) in module.named_parameters())
            if (p.grad is { } g) result[$"{name} gradient"] = g.detach();
        return result;
    }

    /// <summary>Runs every case <paramref name="repeats"/> times; <paramref name="float32Pass"/> defaults to <see cref="Autograd"/>.</summary>
    public static SelfCheckReport Run(IEnumerable<SelfCheckCase> cases, int repeats = 2, Pass? float32Pass = null)
    {
        float32Pass ??= Autograd;
        var clock = Stopwatch.StartNew();
        var names = new List<string>();
        var failures = new List<Discrepancy>();
        double worst = 0;
        foreach (var c in cases)
        {
            names.Add(c.Name);
            using var scope = NewDisposeScope();
            using var noSeedLeak = new GeneratorStateScope();
            manual_seed(20261124);
            var input = c.Input();
            var reference = c.Build();
            reference.to(ScalarType.Float64).eval();
            var input64 = input.to(ScalarType.Float64);
            var upstream = randn(reference.forward(input64).shape);
            var expected = Autograd(reference, input64, upstream.to(ScalarType.Float64), c.InputGradient);
            var module = c.Build();
            module.eval();
            // The reference's weights rounded back to float32: exactly the module's own initial weights.
            using (no_grad())
                foreach (var ((_, p32), (_, p64)) in module.named_parameters().Zip(reference.named_parameters()))
                    p32.copy_(p64.to(ScalarType.Float32));
            for (int r = 0; r < repeats; r++)
            {
                PoisonFreedMemory();
                var actual = float32Pass(module, input, upstream, c.InputGradient);
                foreach (var (quantity, want) in expected)
                {
                    double error = actual.TryGetValue(quantity, out var got) ? RelativeError(got, want) : double.PositiveInfinity;
                    if (error <= Tolerance) worst = Math.Max(worst, error);
                    else if (!failures.Any(f => f.Case == c.Name && f.Quantity == quantity)) failures.Add(new Discrepancy(c.Name, quantity, error));
                }
            }
            module.Dispose();
            reference.Dispose();
        }
        // The float64 passes are a one-off peak of a few hundred MB; training should not keep it resident.
        System.GC.Collect();
        System.GC.WaitForPendingFinalizers();
        NativeTorch.ReturnFreedMemory();
        return new SelfCheckReport(names, failures, failures.Count > 0 ? double.PositiveInfinity : worst, clock.Elapsed);
    }

    /// <summary>‖a − b‖₂ ÷ ‖b‖₂ (∞ when a holds a non-finite value or the shapes differ). Norm-wise rather
    /// than element-wise: float32 rounding through a deep net leaves single elements of a large gradient
    /// off by 2e-3 of its largest (cifarnet's conv4, on ATen and oneDNN alike).</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        if (!actual.shape.SequenceEqual(expected.shape)) return double.PositiveInfinity;
        var a = actual.to(ScalarType.Float64);
        if (!a.isfinite().all().item<bool>()) return double.PositiveInfinity;
        double scale = expected.norm().item<double>();
        double difference = a.sub(expected).norm().item<double>();
        return difference / Math.Max(scale, 1e-30);
    }

    /// <summary>Allocates NaN-filled buffers of the sizes kernels ask for and frees them, so memory the
    /// next pass gets from the allocator without writing it holds NaN instead of whatever was there.</summary>
    public static void PoisonFreedMemory()
    {
        var blocks = new List<Tensor>();
        foreach (var floats in new[] { 1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20 })
            for (int i = 0; i < 8; i++)
                blocks.Add(full(floats, float.NaN));
        foreach (var b in blocks) b.Dispose();
    }

    /// <summary>The cases that check a model as it will be trained and evaluated: its own layers at the
    /// training batch size and at the evaluation batch size, except stlnet (82M parameters on 96×96
    /// images, gigabytes in float64 at batch 250), checked at one batch of 8.</summary>
    public static IEnumerable<SelfCheckCase> ModelCases(string model, int channels, int height, int width, int classes, int[]? widths, int batchSize, string? graph = null)
    {
        var batches = model == "stlnet" ? [Math.Min(batchSize, 8)] : new[] { batchSize, Evaluation.TestEvaluation.BatchSize }.Distinct();
        var seen = Models.ImageGraphs.Resolve(model, graph);
        foreach (var batch in batches)
            yield return new SelfCheckCase($"{model}{(seen is null ? "" : $" on {seen}")} (batch {batch})", () =>
            {
                manual_seed(1);
                return Models.ModelFactory.Create(model, channels, height, width, classes, widths, 0.0, graph);
            }, seen == Models.ImageGraphs.Slic
                ? () => Models.PaddedGraphs.OfNoise(batch, height, width, seed: 1)
                : () => randn(batch, channels, height, width), InputGradient: false);
    }

    /// <summary>Single convolutions with channel counts below, at and between whole SIMD blocks (8 and 16
    /// floats), with an input gradient wherever there is more than one input channel: the faulty
    /// shapes of docs/NATIVE.md and their neighbours, which `thermo doctor` runs beside the models.</summary>
    public static IEnumerable<SelfCheckCase> ConvolutionCases()
    {
        foreach (var (input, output, kernel, size) in new[] { (1, 12, 5, 28), (12, 24, 3, 24), (16, 4, 3, 12), (16, 12, 3, 12), (16, 16, 3, 12), (24, 48, 3, 11), (48, 48, 3, 9), (3, 20, 3, 16) })
            yield return new SelfCheckCase($"conv {input}→{output} {kernel}×{kernel} on {size}×{size} (batch 64)", () =>
            {
                manual_seed(1);
                return new SingleConvolution(input, output, kernel);
            }, () => randn(64, input, size, size), InputGradient: input > 1);
    }

    /// <summary>One convolution computed the way the models compute theirs (<see cref="BlockAlignedConvolution"/>).</summary>
    sealed class SingleConvolution : Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d conv;

        public SingleConvolution(int input, int output, int kernel) : base("conv")
        {
            conv = Conv2d(input, output, kernel);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => BlockAlignedConvolution.Forward(conv, x);
    }

    /// <summary>
    /// Runs the self-check on the kernels in use and, when they fail and are not ATen's own, switches
    /// this process to ATen's kernels and checks again: a machine whose oneDNN computes wrongly trains
    /// on correct (slower) kernels instead of wrong ones. Returns the kernels that passed with their
    /// report, or the last failing report.
    /// </summary>
    public static (ConvolutionKernels Kernels, SelfCheckReport Report, SelfCheckReport? Rejected) ChooseKernels(IReadOnlyList<SelfCheckCase> cases, Pass? float32Pass = null)
    {
        var first = Run(cases, float32Pass: float32Pass);
        if (first.Passed || NativeSetup.Convolutions == ConvolutionKernels.Aten) return (NativeSetup.Convolutions, first, null);
        NativeSetup.Use(ConvolutionKernels.Aten);
        return (ConvolutionKernels.Aten, Run(cases, float32Pass: float32Pass), first);
    }

    /// <summary>Restores the torch generator's state on dispose, so the self-check leaves a run's random stream untouched.</summary>
    sealed class GeneratorStateScope : IDisposable
    {
        readonly Tensor state = torch.random.get_rng_state();
        public void Dispose()
        {
            torch.random.set_rng_state(state);
            state.Dispose();
        }
    }
}

/// <summary>This machine's native stack computed a checked quantity wrongly: nothing it trains can be trusted.</summary>
public sealed class NativeNumericsException(Discrepancy first, int count, NativeStack stack)
    : Exception($"native self-check failed on this machine ({stack.CpuModel}; convolutions on {stack.Convolutions}): " +
                $"{first}{(count > 1 ? $", and {count - 1} more" : "")}; its native kernels compute wrongly, so nothing is trained (see docs/NATIVE.md; the doctor verb checks a machine)")
{
    public Discrepancy First { get; } = first;
    public NativeStack Stack { get; } = stack;
}
