using Thermo.Analysis.Run;
using Thermo.Trainer.Models;
using Thermo.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Tests;

/// <summary>The partial local entropy losses against their definitions, gradient by gradient.</summary>
public class SmoothedLossTests
{
    static (Mlp Model, Tensor X, Tensor Y, Tensor[] Smoothed, Tensor[][] Displacements) Setup()
    {
        manual_seed(5);
        var model = new Mlp(12, 3, 2, 8);
        var x = randn(16, 12);
        var y = randint(0, 3, 16);
        var smoothed = model.named_parameters().Where(p => p.name == "fc1.weight").Select(p => (Tensor)p.parameter).ToArray();
        return (model, x, y, smoothed, SmoothedLoss.Displacements(smoothed, 0.05, 3));
    }

    /// <summary>Each parameter's gradient of the cross-entropy at W + Δ (Δ on fc1.weight; a = 0 is W), and the loss.</summary>
    static (double Loss, float[][] Gradients) At(Mlp model, Tensor x, Tensor y, Tensor weight, Tensor? displacement)
    {
        var original = weight.detach().clone();
        using (no_grad()) if (displacement is not null) weight.add_(displacement);
        model.zero_grad();
        var loss = nn.functional.cross_entropy(model.forward(x), y);
        loss.backward();
        var grads = model.parameters().Select(p => p.grad!.data<float>().ToArray()).ToArray();
        using (no_grad()) weight.copy_(original);
        return (loss.item<float>(), grads);
    }

    static void Close(float[][] expected, float[][] actual)
    {
        for (int p = 0; p < expected.Length; p++)
            for (int i = 0; i < expected[p].Length; i++)
                Assert.True(Math.Abs(expected[p][i] - actual[p][i]) <= 1e-6 + 1e-4 * Math.Abs(expected[p][i]), $"parameter {p}, element {i}: {expected[p][i]} vs {actual[p][i]}");
    }

    [Theory]
    [InlineData("pla")]
    [InlineData("plea")]
    public void The_gradient_is_the_weighted_mean_of_the_gradients_at_the_sampled_points(string kind)
    {
        var (model, x, y, smoothed, displacements) = Setup();
        var before = smoothed[0].data<float>().ToArray();
        var points = new[] { At(model, x, y, smoothed[0], null) }.Concat(displacements.Select(d => At(model, x, y, smoothed[0], d[0]))).ToArray();
        // PLA: equal weights 1/(1+y); PLEA: p_a = e^{−L_a} / Σ_b e^{−L_b}
        var weights = kind == "pla" ? points.Select(_ => 1.0 / points.Length).ToArray()
            : points.Select(p => Math.Exp(-p.Loss)).Select(e => e / points.Sum(q => Math.Exp(-q.Loss))).ToArray();
        var expected = points[0].Gradients.Select((g, p) => g.Select((_, i) => (float)points.Select((q, a) => weights[a] * q.Gradients[p][i]).Sum()).ToArray()).ToArray();
        double expectedLoss = kind == "pla" ? points.Average(p => p.Loss) : -Math.Log(points.Average(p => Math.Exp(-p.Loss)));

        model.zero_grad();
        var (loss, _) = SmoothedLoss.Backward(model, x, y, kind, smoothed, displacements);
        Close(expected, model.parameters().Select(p => p.grad!.data<float>().ToArray()).ToArray());
        Assert.Equal(expectedLoss, loss, 5);
        Assert.Equal(before, smoothed[0].data<float>().ToArray());   // W is restored bit for bit
    }

    [Fact]
    public void Displacements_lie_in_the_hypercube_and_only_the_chosen_weights_move()
    {
        var (_, _, _, smoothed, displacements) = Setup();
        Assert.Equal(3, displacements.Length);
        Assert.All(displacements, d => Assert.True(d[0].abs().max().item<float>() <= 0.05f));
        Assert.All(displacements, d => Assert.Equal(smoothed[0].shape, d[0].shape));
    }

    [Fact]
    public void A_pla_run_trains_and_unknown_smoothed_layers_are_named()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 128, 32);
        var config = TinyData.QuickConfig(data, 1) with { Model = "mlp2", Widths = [16], Loss = "pla", SmoothLayers = ["fc2"], Samples = 2 };
        using (var run = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) run.Run();
        Assert.True(double.IsFinite(TrainingRun.ReadMetrics(Path.Combine(dir["run"], RunLayout.MetricsFile)).Last().TrainLoss));
        var bad = ThermoProcess.Run(dir.Path, "train", "--model", "mlp2", "--data-dir", data, "--loss", "plea", "--smooth-layers", "fc9", "--out", dir["bad"]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--smooth-layers: unknown layer 'fc9'", bad.Err);
    }
}
