using System.Runtime.CompilerServices;
using System.Text.Json;
using Thermo.Trainer.Native;
using Thermo.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Tests;

/// <summary>Every test of this assembly runs on the native stack the <c>thermo</c> executable uses.</summary>
static class NativeStackForTests
{
    [ModuleInitializer]
    internal static void Apply() => NativeSetup.Apply();
}

public class NativeStackTests
{
    static List<SelfCheckCase> FourConv(int batch = 32) =>
        NumericsSelfCheck.ModelCases("fourconv", 1, 28, 28, 10, [12, 24, 48, 48], batch).Take(1).ToList();

    [Fact]
    public void The_self_check_passes_on_the_kernels_Thermo_trains_with()
    {
        var before = NativeSetup.Convolutions;
        try
        {
            NativeSetup.Use(NativeSetup.Configured);
            var (kernels, report, rejected) = NumericsSelfCheck.ChooseKernels(NumericsSelfCheck.ConvolutionCases().Concat(FourConv()).ToList());
            // No fallback: the configured kernels themselves compute correctly on this machine.
            Assert.True(rejected is null, rejected is null ? "" : string.Join("; ", rejected.Failures));
            Assert.Equal(NativeSetup.Configured, kernels);
            Assert.True(report.Passed, string.Join("; ", report.Failures));
            Assert.InRange(report.WorstRelativeError, 0, NumericsSelfCheck.Tolerance);
            Assert.Equal(kernels, NativeSetup.Convolutions);
        }
        finally { NativeSetup.Use(before); }
    }

    [Fact]
    public void A_wrong_kernel_result_is_caught_and_named()
    {
        // The pass training runs, with one element of conv2's weight gradient off by 5 % of the gradient's norm.
        NumericsSelfCheck.Pass wrong = (module, input, upstream, inputGradient) =>
        {
            var result = new Dictionary<string, Tensor>(NumericsSelfCheck.Autograd(module, input, upstream, inputGradient));
            var g = result["conv2.weight gradient"].clone();
            g.view(-1)[0] += 0.05 * g.norm().item<float>();
            result["conv2.weight gradient"] = g;
            return result;
        };
        var report = NumericsSelfCheck.Run(FourConv(), repeats: 1, float32Pass: wrong);
        var failure = Assert.Single(report.Failures);
        Assert.Equal("conv2.weight gradient", failure.Quantity);
        Assert.Equal("fourconv (batch 32)", failure.Case);
        Assert.InRange(failure.RelativeError, 0.04, 0.06);
    }

    [Fact]
    public void A_kernel_that_reads_memory_it_never_wrote_is_caught()
    {
        // The fault seen on AVX-512: a result that depends on an uninitialised buffer (here multiplied by
        // zero, as oneDNN multiplies its unwritten channel padding by zero weights). The self-check fills
        // freed memory with NaN first, so the buffer holds NaN and NaN × 0 poisons the output.
        NumericsSelfCheck.Pass readsGarbage = (module, input, upstream, inputGradient) =>
        {
            using var unwritten = empty(1 << 10);
            var result = new Dictionary<string, Tensor>(NumericsSelfCheck.Autograd(module, input, upstream, inputGradient));
            result["output"] = result["output"] + unwritten.sum().mul(0);
            return result;
        };
        var report = NumericsSelfCheck.Run(FourConv(), repeats: 2, float32Pass: readsGarbage);
        Assert.Contains(report.Failures, f => f.Quantity == "output" && double.IsPositiveInfinity(f.RelativeError));
    }

    [Fact]
    public void Kernels_that_fail_the_check_are_replaced_by_ATen_and_ATen_failing_too_is_reported()
    {
        var before = NativeSetup.Convolutions;
        try
        {
            // A pass that is wrong whenever oneDNN computes: the check must reject it and settle on ATen.
            NumericsSelfCheck.Pass wrongOnOneDnn = (module, input, upstream, inputGradient) =>
            {
                var result = new Dictionary<string, Tensor>(NumericsSelfCheck.Autograd(module, input, upstream, inputGradient));
                if (NativeSetup.Convolutions != ConvolutionKernels.Aten) result["output"] = result["output"] * 2;
                return result;
            };
            NativeSetup.Use(ConvolutionKernels.OneDnnAligned);
            var (kernels, report, rejected) = NumericsSelfCheck.ChooseKernels(FourConv(), wrongOnOneDnn);
            Assert.Equal(ConvolutionKernels.Aten, kernels);
            Assert.Equal(ConvolutionKernels.Aten, NativeSetup.Convolutions);
            Assert.True(report.Passed);
            Assert.Equal("output", Assert.Single(rejected!.Failures).Quantity);

            // Wrong everywhere: nothing passes, and the caller is told so.
            NumericsSelfCheck.Pass alwaysWrong = (module, input, upstream, inputGradient) =>
                new Dictionary<string, Tensor>(NumericsSelfCheck.Autograd(module, input, upstream, inputGradient)) { ["output"] = zeros(1) };
            NativeSetup.Use(ConvolutionKernels.OneDnnAligned);
            var (_, failed, _) = NumericsSelfCheck.ChooseKernels(FourConv(), alwaysWrong);
            Assert.False(failed.Passed);
        }
        finally { NativeSetup.Use(before); }
    }

    [Theory]
    [InlineData(1, 12, 5, 1, 0)]
    [InlineData(12, 24, 3, 1, 0)]
    [InlineData(24, 48, 3, 1, 0)]
    [InlineData(16, 4, 3, 1, 0)]
    [InlineData(48, 48, 3, 1, 0)]
    [InlineData(20, 33, 1, 1, 0)]
    [InlineData(20, 12, 3, 2, 1)]
    public void A_block_aligned_convolution_equals_the_plain_one(int input, int output, int kernel, int stride, int padding)
    {
        // On ATen's kernels (no oneDNN blocks involved) the padded computation must give the layer's own
        // output and the same gradients of weight, bias and input: the padding adds exact zeros only.
        var before = NativeSetup.Convolutions;
        NativeSetup.Use(ConvolutionKernels.Aten);
        try
        {
            manual_seed(3);
            using var layer = nn.Conv2d(input, output, kernel, stride: stride, padding: padding);
            using var x = randn(5, input, 11, 11);
            int size = (11 + 2 * padding - kernel) / stride + 1;
            using var upstream = randn(5, output, size, size);
            (Tensor Output, Tensor Weight, Tensor Bias, Tensor Input) Pass(Func<Tensor, Tensor> conv)
            {
                layer.zero_grad();
                var xi = x.clone().requires_grad_();
                var y = conv(xi);
                y.mul(upstream).sum().backward();
                return (y.detach(), layer.weight!.grad!.clone(), layer.bias!.grad!.clone(), xi.grad!.clone());
            }
            var plain = Pass(layer.forward);
            var padded = Pass(xi => BlockAlignedConvolution.Padded(layer, xi));
            Assert.Equal(plain.Output.shape, padded.Output.shape);
            foreach (var (a, b) in new[] { (plain.Output, padded.Output), (plain.Weight, padded.Weight), (plain.Bias, padded.Bias), (plain.Input, padded.Input) })
                Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-5), $"max difference {(a - b).abs().max().item<float>()}");
            Assert.Equal(((output + 15) / 16 * 16L, input >= 16 ? (input + 15) / 16 * 16L : input), BlockAlignedConvolution.AlignedChannels(output, input));
        }
        finally { NativeSetup.Use(before); }
    }

    [Fact]
    public void Run_json_records_the_native_stack_and_the_self_check_it_passed()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], train: 128, test: 64);
        using (var run = TrainingRun.Start(TinyData.QuickConfig(data, epochs: 1), dir["run"], dir["artifacts"], new SilentProgress()))
            run.Run();
        var manifest = RunManifest.TryLoad(dir["run"])!;
        var native = manifest.Native!;
        Assert.Equal(NativeSetup.Name(NativeSetup.Configured), native.Convolutions);
        Assert.False(string.IsNullOrWhiteSpace(native.CpuModel));
        Assert.Equal(1, native.Threads);
        Assert.Equal("2.10.0", native.LibTorchVersion);
        Assert.Contains("v3.7.1", native.OneDnnVersion);
        Assert.Contains(native.AtenCapability, new[] { "DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "SVE256" });
        Assert.Contains("fourconv (batch 64)", manifest.SelfCheck!.Cases);
        Assert.InRange(manifest.SelfCheck.WorstRelativeError, 0, manifest.SelfCheck.Tolerance);
        // The JSON names the kernels as a word a reader can grep for.
        Assert.Contains($"\"convolutions\": \"{native.Convolutions}\"", File.ReadAllText(RunManifest.PathIn(dir["run"])));
    }

    [Fact]
    public void A_diverging_run_names_the_step_and_stays_resumable()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], train: 128, test: 64);
        var config = TinyData.QuickConfig(data, epochs: 2) with { Optimizer = "sgd", Lr = 1e30, Momentum = 0 };
        var error = Assert.Throws<ThermoException>(() =>
        {
            using var run = TrainingRun.Start(config, dir["run"], dir["artifacts"], new SilentProgress());
            run.Run();
        });
        Assert.Matches(@"training diverged at epoch 1, step \d+ \(batch \d+ of 2\)", error.Message);
        Assert.Contains("resumable from epoch 0", error.Message);
        var manifest = RunManifest.TryLoad(dir["run"])!;
        Assert.Equal(RunStatus.Failed, manifest.Status);
        Assert.Equal(0, manifest.LastCompleteEpoch);
        Assert.True(Directory.Exists(Path.Combine(dir["run"], manifest.Checkpoint!)));
    }

    [Fact]
    public void Thermo_doctor_checks_the_models_and_reports_the_stack()
    {
        using var dir = new TempDir();
        var (code, stdout, _) = ThermoProcess.Run(dir["artifacts"], "doctor", "--models", "fourconv,mlp2", "--json");
        Assert.Equal(0, code);
        using var json = JsonDocument.Parse(stdout);
        Assert.True(json.RootElement.GetProperty("passed").GetBoolean());
        Assert.Contains(json.RootElement.GetProperty("cases").EnumerateArray(), c => c.GetString() == "fourconv (batch 128)");
        Assert.Equal(NativeSetup.Name(NativeSetup.Configured), json.RootElement.GetProperty("native").GetProperty("convolutions").GetString());
        var (badCode, _, badErr) = ThermoProcess.Run(dir["artifacts"], "doctor", "--kernels", "fastest");
        Assert.Equal(2, badCode);
        Assert.Contains("--kernels: unknown convolution kernels 'fastest'", badErr);
    }
}
