using Thermo.Analysis;
using Thermo.Trainer.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Thermo.Trainer.Models;

/// <summary>
/// The 4-conv CNN of the temperature-pruning paper: conv1 (5×5) → ReLU → conv2 (3×3) → ReLU →
/// dropout → 2×2 max pool → conv3 (3×3) → ReLU → conv4 (3×3) → ReLU → dropout → 2×2 max pool →
/// linear head <c>fc</c>. No batch norm. The paper fixes conv1 at 12 filters of 5×5; it does not give
/// the other widths or kernels, so they are configurable (default 12, 24, 48, 48 with 3×3 kernels,
/// about 38k parameters on MNIST). Layer names <c>conv1</c>…<c>conv4</c>, <c>fc</c> are the keys every
/// later stage uses.
/// </summary>
public sealed class FourConvNet : Module<Tensor, Tensor>
{
    public static readonly int[] DefaultWidths = [12, 24, 48, 48];

    // Fields in call order; RegisterComponents() names the submodules after them.
    private readonly Conv2d conv1, conv2;
    private readonly Dropout dropout1;
    private readonly MaxPool2d pool1;
    private readonly Conv2d conv3, conv4;
    private readonly Dropout dropout2;
    private readonly MaxPool2d pool2;
    private readonly Linear fc;

    public FourConvNet(int channels, int height, int width, int classes, int[] widths, double dropout) : base("fourconv")
    {
        if (widths.Length != 4 || widths.Any(w => w <= 0)) throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Widths), "", $"need four positive conv widths, got '{string.Join(",", widths)}'");
        if (dropout is < 0 or >= 1) throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Dropout), "", $"{dropout} is not in [0, 1)");
        var (h, w) = HeadGrid(height, width);
        if (h <= 0 || w <= 0) throw new ThermoException($"fourconv needs images of at least 16×16, got {height}×{width}");
        conv1 = Conv2d(channels, widths[0], 5);
        conv2 = Conv2d(widths[0], widths[1], 3);
        dropout1 = Dropout(dropout);
        pool1 = MaxPool2d(2);
        conv3 = Conv2d(widths[1], widths[2], 3);
        conv4 = Conv2d(widths[2], widths[3], 3);
        dropout2 = Dropout(dropout);
        pool2 = MaxPool2d(2);
        fc = Linear(widths[3] * h * w, classes);
        RegisterComponents();
    }

    /// <summary>The conv layers in order; the input channels of each one's successor (conv2…conv4, then
    /// <c>fc</c>'s input features) follow its filters.</summary>
    public static readonly string[] ConvLayers = ["conv1", "conv2", "conv3", "conv4"];

    /// <summary>Height and width of conv4's output after the second pool, the grid <c>fc</c> flattens per channel.</summary>
    public static (int Height, int Width) HeadGrid(int height, int width) => (((height - 4 - 2) / 2 - 4) / 2, ((width - 4 - 2) / 2 - 4) / 2);

    /// <summary>Parameters and multiply-accumulates of one forward pass of one image, from the layer
    /// shapes: a k×k conv costs out·in·k²·H_out·W_out, a linear layer in·out.</summary>
    public static (long Parameters, long MultiplyAccumulates) Cost(int channels, int height, int width, int classes, int[] widths)
    {
        long parameters = 0, macs = 0;
        int h = height, w = width, inputs = channels;
        void Conv(int outputs, int k)
        {
            h -= k - 1;
            w -= k - 1;
            parameters += (long)outputs * inputs * k * k + outputs;
            macs += (long)outputs * inputs * k * k * h * w;
            inputs = outputs;
        }
        Conv(widths[0], 5);
        Conv(widths[1], 3);
        h /= 2; w /= 2;
        Conv(widths[2], 3);
        Conv(widths[3], 3);
        h /= 2; w /= 2;
        long features = (long)inputs * h * w;
        parameters += features * classes + classes;
        macs += features * classes;
        return (parameters, macs);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = functional.relu(BlockAlignedConvolution.Forward(conv1, x));
        y = functional.relu(BlockAlignedConvolution.Forward(conv2, y));
        y = pool1.forward(dropout1.forward(y));
        y = functional.relu(BlockAlignedConvolution.Forward(conv3, y));
        y = functional.relu(BlockAlignedConvolution.Forward(conv4, y));
        y = pool2.forward(dropout2.forward(y));
        return fc.forward(y.flatten(1)).MoveToOuterDisposeScope();
    }
}

/// <summary>Builds models by their CLI name.</summary>
public static class ModelFactory
{
    public static readonly string[] Names = ["fourconv", "lenet", "mlp2", "mlp3", "cifarnet", "stlnet", "gcn", "gat"];

    /// <summary>The model <paramref name="name"/> for inputs of the given shape. <paramref name="graph"/> is
    /// the graph gcn and gat see each image as (<see cref="ImageGraphs"/>; null: slic), which decides what
    /// they read: images for tiles, <see cref="PaddedGraphs"/> for slic.</summary>
    public static Module<Tensor, Tensor> Create(string name, int channels, int height, int width, int classes, int[]? widths, double dropout, string? graph = null) =>
        name switch
        {
            "fourconv" => new FourConvNet(channels, height, width, classes, widths ?? FourConvNet.DefaultWidths, dropout),
            "lenet" => new LeNet(channels, height, width, classes, widths ?? LeNet.DefaultWidths),
            "mlp2" or "mlp3" => new Mlp(channels * height * width, classes, name == "mlp2" ? 2 : 3, HiddenWidth(widths, channels * height * width)),
            "cifarnet" => new FiveConvNet(name, channels, height, width, classes, widths ?? FiveConvNet.CifarWidths),
            "stlnet" => new FiveConvNet(name, channels, height, width, classes, widths ?? FiveConvNet.StlWidths),
            "gcn" => new GcnNet(channels, height, width, classes, ImageGraphs.Resolve(name, graph)!),
            "gat" => new GatNet(channels, height, width, classes, ImageGraphs.Resolve(name, graph)!),
            _ => throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Model), "", $"unknown model '{name}' (known: {string.Join(", ", Names)})"),
        };

    /// <summary>The MLPs' hidden width: the input's size (784 on MNIST), as in the paper, unless --widths gives one.</summary>
    static int HiddenWidth(int[]? widths, int inputs) =>
        widths switch
        {
            null => inputs,
            [var w] => w,
            _ => throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Widths), "", $"an mlp takes one hidden width, got '{string.Join(",", widths)}'"),
        };
}
