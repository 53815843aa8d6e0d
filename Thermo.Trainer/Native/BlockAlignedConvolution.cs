using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Thermo.Trainer.Native;

/// <summary>
/// A 2-D convolution computed with its channel counts rounded up to whole SIMD channel blocks, so that
/// oneDNN never meets the partial blocks it computes wrongly on AVX-512 machines (docs/NATIVE.md):
/// the weight gets zero filters (and zero input channels from 16 input channels up), the input gets
/// zero channels, the output is cut back to the real filters. The output and the gradients of the real
/// weight, bias and input equal the plain convolution's: the zero filters' outputs are cut away, the
/// zero input channels multiply zero weights, and autograd sends the padding's gradients nowhere.
/// Only under <see cref="ConvolutionKernels.OneDnnAligned"/> and on the CPU (oneDNN is the CPU's
/// library); otherwise exactly the layer's own forward.
/// </summary>
public static class BlockAlignedConvolution
{
    /// <summary>oneDNN's float32 channel block on AVX-512 (16 floats per register); a multiple of AVX2's 8.</summary>
    public const int ChannelBlock = 16;

    static long RoundUp(long channels) => (channels + ChannelBlock - 1) / ChannelBlock * ChannelBlock;

    /// <summary>Channel counts as computed: output channels in whole blocks; input channels in whole
    /// blocks from one block up (below that oneDNN reads the input plainly, as the self-check confirms,
    /// and padding a 1-channel image to 16 channels would cost 16×).</summary>
    public static (long Output, long Input) AlignedChannels(long output, long input) =>
        (RoundUp(output), input >= ChannelBlock ? RoundUp(input) : input);

    /// <summary>The layer's convolution of <paramref name="x"/>, with whole channel blocks when oneDNN
    /// aligned is in use. Stride, zero padding and dilation are the layer's; grouped convolutions and
    /// other padding modes are refused (padding channels would mix groups).</summary>
    public static Tensor Forward(Conv2d layer, Tensor x) =>
        NativeSetup.Convolutions == ConvolutionKernels.OneDnnAligned && x.device_type == TorchSharp.DeviceType.CPU ? Padded(layer, x) : layer.forward(x);

    /// <summary>The layer's convolution computed with whole channel blocks, whatever the kernels.</summary>
    public static Tensor Padded(Conv2d layer, Tensor x)
    {
        if (layer.groups != 1 || layer.padding_mode != TorchSharp.PaddingModes.Zeros || layer.padding_type is not null)
            throw new InvalidOperationException($"block-aligned convolution supports one group and explicit zero padding, not groups={layer.groups}, padding mode {layer.padding_mode}");
        var weight = layer.weight!;
        long output = weight.shape[0], input = weight.shape[1];
        var (alignedOutput, alignedInput) = AlignedChannels(output, input);
        if (alignedOutput == output && alignedInput == input) return layer.forward(x);
        using var scope = NewDisposeScope();
        // pad() lists dimensions from the last: kernel width, kernel height, input channels, output channels.
        var w = nn.functional.pad(weight, [0, 0, 0, 0, 0, alignedInput - input, 0, alignedOutput - output]);
        var b = layer.bias is { } bias ? nn.functional.pad(bias, [0, alignedOutput - output]) : null;
        var xi = alignedInput == input ? x : nn.functional.pad(x, [0, 0, 0, 0, 0, alignedInput - input]);
        var y = nn.functional.conv2d(xi, w, b, layer.stride, layer.padding, layer.dilation);
        return (alignedOutput == output ? y : y.narrow(1, 0, output)).MoveToOuterDisposeScope();
    }
}
