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
        Assert.Contains("unknown model 'resnet'", Assert.Throws<ThermoException>(() => ModelFactory.Create("resnet", 1, 28, 28, 10, null, 0.1)).Message);
        Assert.Contains("--widths", Assert.Throws<ThermoException>(() => ModelFactory.Create("fourconv", 1, 28, 28, 10, [1, 2], 0.1)).Message);
    }
}
