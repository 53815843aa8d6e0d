using Thermo.Analysis;
using Thermo.Trainer.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Thermo.Trainer.Models;

/// <summary>
/// The modified LeNet of the thermodynamic-interpretation paper: conv1 (5×5) → batch norm → ReLU →
/// 2×2 max pool → conv2 (5×5) → batch norm → ReLU → 2×2 max pool → linear1 → ReLU → linear2. The paper
/// gives only "two conv + two linear layers with batch norm and max pooling"; the widths are LeNet-5's
/// (6, 16 filters; 120 hidden units) unless --widths says otherwise. The batch-norm running mean and
/// variance are buffers, so they are in every snapshot and a run's final model can be rebuilt.
/// </summary>
public sealed class LeNet : Module<Tensor, Tensor>
{
    public static readonly int[] DefaultWidths = [6, 16, 120];

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly MaxPool2d pool1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly MaxPool2d pool2;
    private readonly Linear linear1, linear2;

    public LeNet(int channels, int height, int width, int classes, int[] widths) : base("lenet")
    {
        if (widths.Length != 3 || widths.Any(w => w <= 0)) throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Widths), "", $"lenet needs conv1,conv2,linear1 widths, got '{string.Join(",", widths)}'");
        int h = ((height - 4) / 2 - 4) / 2, w = ((width - 4) / 2 - 4) / 2;
        if (h <= 0 || w <= 0) throw new ThermoException($"lenet needs images of at least 16×16, got {height}×{width}");
        conv1 = Conv2d(channels, widths[0], 5);
        bn1 = BatchNorm2d(widths[0]);
        pool1 = MaxPool2d(2);
        conv2 = Conv2d(widths[0], widths[1], 5);
        bn2 = BatchNorm2d(widths[1]);
        pool2 = MaxPool2d(2);
        linear1 = Linear(widths[1] * h * w, widths[2]);
        linear2 = Linear(widths[2], classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = pool1.forward(functional.relu(bn1.forward(BlockAlignedConvolution.Forward(conv1, x))));
        y = pool2.forward(functional.relu(bn2.forward(BlockAlignedConvolution.Forward(conv2, y))));
        y = functional.relu(linear1.forward(y.flatten(1)));
        return linear2.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The partial-entropy paper's fully connected nets: <c>depth</c> hidden layers fc1…fcN of 784 units
/// (the input's size, so layers differ only in depth), ReLU, and a 10-way output layer <c>out</c>.
/// Temperature groups are the rows of each weight matrix.
/// </summary>
public sealed class Mlp : Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> hidden = new();
    private readonly Linear output;

    public Mlp(int inputs, int classes, int depth, int width) : base($"mlp{depth}")
    {
        if (width <= 0) throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Widths), "", $"mlp{depth} needs a positive hidden width, got {width}");
        for (int i = 0; i < depth; i++) hidden.Add(Linear(i == 0 ? inputs : width, width));
        output = Linear(width, classes);
        // Names fc1…fcN and out rather than hidden.0…: the analysis and its users refer to layers by name.
        for (int i = 0; i < depth; i++) register_module($"fc{i + 1}", hidden[i]);
        register_module("out", output);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = x.flatten(1);
        foreach (var layer in hidden) y = functional.relu(layer.forward(y));
        return output.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The partial-entropy paper's convolutional nets (its (24) for CIFAR-10 and (25) for STL-10): conv1,
/// conv2 → 2×2 max pool → conv3, conv4, conv5 → 2×2 max pool → fc1, fc2 (as wide as the flattened
/// features) → fc3; every kernel 3×3 without padding, ReLU after every layer but the last. Widths:
/// 64, 64, 128, 128, 128 (cifarnet) or 8, 8, 16, 16, 16 (stlnet). On 32×32 images cifarnet's head is
/// the paper's 128·4·4; stlnet's 16·20·20 head is for 96×96 STL-10 images and shrinks with the input.
/// </summary>
public sealed class FiveConvNet : Module<Tensor, Tensor>
{
    public static readonly int[] CifarWidths = [64, 64, 128, 128, 128];
    public static readonly int[] StlWidths = [8, 8, 16, 16, 16];

    private readonly Conv2d conv1, conv2;
    private readonly MaxPool2d pool1;
    private readonly Conv2d conv3, conv4, conv5;
    private readonly MaxPool2d pool2;
    private readonly Linear fc1, fc2, fc3;

    public FiveConvNet(string name, int channels, int height, int width, int classes, int[] widths) : base(name)
    {
        if (widths.Length != 5 || widths.Any(w => w <= 0)) throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Widths), "", $"{name} needs five positive conv widths, got '{string.Join(",", widths)}'");
        int h = ((height - 4) / 2 - 6) / 2, w = ((width - 4) / 2 - 6) / 2;
        if (h <= 0 || w <= 0) throw new ThermoException($"{name} needs images of at least 24×24, got {height}×{width}");
        int features = widths[4] * h * w;
        conv1 = Conv2d(channels, widths[0], 3);
        conv2 = Conv2d(widths[0], widths[1], 3);
        pool1 = MaxPool2d(2);
        conv3 = Conv2d(widths[1], widths[2], 3);
        conv4 = Conv2d(widths[2], widths[3], 3);
        conv5 = Conv2d(widths[3], widths[4], 3);
        pool2 = MaxPool2d(2);
        fc1 = Linear(features, features);
        fc2 = Linear(features, features);
        fc3 = Linear(features, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = functional.relu(BlockAlignedConvolution.Forward(conv1, x));
        y = pool1.forward(functional.relu(BlockAlignedConvolution.Forward(conv2, y)));
        y = functional.relu(BlockAlignedConvolution.Forward(conv3, y));
        y = functional.relu(BlockAlignedConvolution.Forward(conv4, y));
        y = pool2.forward(functional.relu(BlockAlignedConvolution.Forward(conv5, y)));
        y = functional.relu(fc1.forward(y.flatten(1)));
        y = functional.relu(fc2.forward(y));
        return fc3.forward(y).MoveToOuterDisposeScope();
    }
}
