using Thermo.Trainer.Models;
using static TorchSharp.torch;

namespace Thermo.Trainer.Tests;

public class ModelTests
{
    static long ConvParameters(int input, int output, int kernel) => (long)output * input * kernel * kernel + output;

    [Theory]
    [InlineData(1, 28, 28, 12, 24, 48, 48)]
    [InlineData(3, 32, 32, 12, 16, 16, 32)]
    public void Parameter_count_matches_the_architecture(int channels, int h, int w, int w1, int w2, int w3, int w4)
    {
        using var model = new FourConvNet(channels, h, w, 10, [w1, w2, w3, w4], 0.1);
        // conv1 5×5 valid, conv2 3×3 valid, pool 2, conv3 and conv4 3×3 valid, pool 2
        int side(int s) => ((s - 4 - 2) / 2 - 2 - 2) / 2;
        long expected = ConvParameters(channels, w1, 5) + ConvParameters(w1, w2, 3) + ConvParameters(w2, w3, 3) + ConvParameters(w3, w4, 3)
                        + (long)w4 * side(h) * side(w) * 10 + 10;
        Assert.Equal(expected, model.parameters().Sum(p => p.numel()));
        using var x = zeros(2, channels, h, w);
        using var y = model.forward(x);
        Assert.Equal([2L, 10], y.shape);
    }

    [Fact]
    public void Layers_have_the_stable_names_used_downstream()
    {
        using var model = new FourConvNet(1, 28, 28, 10, FourConvNet.DefaultWidths, 0.1);
        Assert.Equal(
            ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias", "conv4.weight", "conv4.bias", "fc.weight", "fc.bias"],
            model.named_parameters().Select(p => p.name));
        Assert.Equal([12L, 1, 5, 5], model.named_parameters().First().parameter.shape);
    }

    [Fact]
    public void Unknown_models_and_bad_widths_are_named()
    {
        Assert.Contains("unknown model 'resnet'", Assert.Throws<Thermo.Analysis.SettingException>(() => ModelFactory.Create("resnet", 1, 28, 28, 10, null, 0.1)).Message);
        Assert.Equal("Widths", Assert.Throws<Thermo.Analysis.SettingException>(() => ModelFactory.Create("fourconv", 1, 28, 28, 10, [1, 2], 0.1)).Setting);
    }

    static long LinearParameters(int input, int output) => (long)input * output + output;

    [Theory]
    [InlineData("lenet", 1, 28, 28)]
    [InlineData("mlp2", 1, 28, 28)]
    [InlineData("mlp3", 1, 28, 28)]
    [InlineData("cifarnet", 3, 32, 32)]
    [InlineData("stlnet", 3, 96, 96)]
    public void The_papers_models_have_their_parameter_counts_names_and_output_shape(string name, int channels, int h, int w)
    {
        using var model = ModelFactory.Create(name, channels, h, w, 10, null, 0.1);
        var (expected, layers) = name switch
        {
            // conv 5×5 → pool → conv 5×5 → pool: 28 → 24 → 12 → 8 → 4; batch norm has a weight and a bias per channel
            "lenet" => (ConvParameters(1, 6, 5) + 2 * 6 + ConvParameters(6, 16, 5) + 2 * 16 + LinearParameters(16 * 4 * 4, 120) + LinearParameters(120, 10),
                new[] { "conv1", "bn1", "conv2", "bn2", "linear1", "linear2" }),
            "mlp2" => (2 * LinearParameters(784, 784) + LinearParameters(784, 10), new[] { "fc1", "fc2", "out" }),
            "mlp3" => (3 * LinearParameters(784, 784) + LinearParameters(784, 10), new[] { "fc1", "fc2", "fc3", "out" }),
            // 32 → 30 → 28 → 14 → 12 → 10 → 8 → 4: the paper's 128·4·4 head
            "cifarnet" => (ConvParameters(3, 64, 3) + ConvParameters(64, 64, 3) + ConvParameters(64, 128, 3) + 2 * ConvParameters(128, 128, 3)
                + 2 * LinearParameters(2048, 2048) + LinearParameters(2048, 10), new[] { "conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3" }),
            // 96 → 94 → 92 → 46 → 44 → 42 → 40 → 20: the paper's 16·20·20 head
            _ => (ConvParameters(3, 8, 3) + ConvParameters(8, 8, 3) + ConvParameters(8, 16, 3) + 2 * ConvParameters(16, 16, 3)
                + 2 * LinearParameters(6400, 6400) + LinearParameters(6400, 10), new[] { "conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3" }),
        };
        Assert.Equal(expected, model.parameters().Sum(p => p.numel()));
        Assert.Equal(layers, model.named_parameters().Select(p => p.name.Split('.')[0]).Distinct());
        model.eval();
        using var x = zeros(2, channels, h, w);
        using var y = model.forward(x);
        Assert.Equal([2L, 10], y.shape);
    }

    [Fact]
    public void Lenets_batch_norm_statistics_are_buffers()
    {
        using var model = ModelFactory.Create("lenet", 1, 28, 28, 10, null, 0);
        Assert.Equal(["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked"],
            model.named_buffers().Select(b => b.name));
    }
}
