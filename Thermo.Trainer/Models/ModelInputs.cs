using Thermo.Trainer.Data;
using static TorchSharp.torch;

namespace Thermo.Trainer.Models;

/// <summary>
/// What a model reads for a data set's images: the images themselves, N×C×H×W, or for gcn and gat on
/// slic each image's superpixel graph (<see cref="SuperpixelCache"/>), packed by <see cref="PaddedGraphs"/>.
/// The trainer, the pruning stage's test sets and the benchmarks take their tensors from here, so a
/// run's model is always evaluated on the inputs it was trained on.
/// </summary>
public static class ModelInputs
{
    /// <summary>The superpixel graphs of the whole of <paramref name="data"/> when <paramref name="graph"/>
    /// (a resolved <see cref="ImageGraphs"/> name) needs them, else null.</summary>
    public static SuperpixelGraphs? Graphs(string? graph, ImageDataset data, string artifacts, Action<string> log) =>
        graph == ImageGraphs.Slic ? SuperpixelCache.Load(data, SlicParameters.Paper, artifacts, log) : null;

    /// <summary>
    /// The input tensor of <paramref name="split"/> (on the CPU): its images, or with
    /// <paramref name="graphs"/> (the graphs of the whole split it was taken from) the graphs of its
    /// images, which are the split's first images.
    /// </summary>
    public static Tensor Of(ImageSplit split, SuperpixelGraph[]? graphs)
    {
        if (graphs is null) return tensor(split.Pixels, [split.Count, split.Channels, split.Height, split.Width]);
        if (graphs.Length < split.Count) throw new ThermoException($"{graphs.Length} superpixel graphs for {split.Count} images");
        return PaddedGraphs.Pack(graphs[..split.Count]);
    }
}
