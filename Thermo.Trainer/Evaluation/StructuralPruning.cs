using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Trainer.Models;
using Thermo.Trainer.Training;

namespace Thermo.Trainer.Evaluation;

/// <summary>
/// Physical removal of conv filters from a fourconv snapshot: the layer loses the filters (weight rows
/// and bias), its successor loses the matching input channels (conv2…conv4), or, after conv4, the
/// matching input features of <c>fc</c> (one H×W block per channel). Pure array work on snapshots, so
/// the smaller model can be written as a snapshot file and rebuilt from it (<c>--init-from</c>).
/// A removed filter's output is zero in the masked model (zero weights and bias, ReLU, pooling), so the
/// smaller model computes the same logits up to the order of floating-point summation.
/// </summary>
public static class StructuralPruning
{
    /// <summary>The snapshot without <paramref name="removed"/> filters of <paramref name="layer"/>, and the new widths.</summary>
    public static (int[] Widths, Snapshot Pruned) RemoveFilters(Snapshot snapshot, int[] widths, string layer, IReadOnlyCollection<int> removed, int height, int width)
    {
        int index = Array.IndexOf(FourConvNet.ConvLayers, layer);
        if (index < 0) throw new SettingException(LayerCheck.Setting, "", $"structural pruning removes filters of {string.Join(", ", FourConvNet.ConvLayers)}, not '{layer}'");
        int filters = widths[index];
        if (removed.Any(u => u < 0 || u >= filters)) throw new ArgumentException($"filters to remove must lie in 0..{filters - 1}");
        var keep = Enumerable.Range(0, filters).Where(u => !removed.Contains(u)).ToArray();
        if (keep.Length == 0) throw new ThermoException($"structural pruning of {layer}: removing all {filters} filters leaves no layer");
        var successor = index + 1 < FourConvNet.ConvLayers.Length ? FourConvNet.ConvLayers[index + 1] : "fc";
        var (gridH, gridW) = FourConvNet.HeadGrid(height, width);
        int block = successor == "fc" ? gridH * gridW : 1;

        TensorSnapshot Prune(TensorSnapshot t)
        {
            if (t.Layer == layer)
            {
                // weight [out, …] or bias [out]: keep the kept filters' rows
                int row = t.Values.Length / t.Shape[0];
                var values = keep.SelectMany(u => t.Values.Skip(u * row).Take(row)).ToArray();
                return new TensorSnapshot(t.Layer, t.Tensor, [keep.Length, .. t.Shape[1..]], values);
            }
            if (t.Layer == successor && t.Tensor == "weight")
            {
                // conv weight [out, in, k, k] (block k·k) or fc weight [classes, in·H·W] (block H·W):
                // keep, in every output row, the inputs that come from kept filters
                int outputs = t.Shape[0];
                int inner = successor == "fc" ? block : t.Shape[2] * t.Shape[3];
                int rowLength = t.Values.Length / outputs;
                var values = new float[outputs * keep.Length * inner];
                for (int o = 0; o < outputs; o++)
                    for (int j = 0; j < keep.Length; j++)
                        Array.Copy(t.Values, o * rowLength + keep[j] * inner, values, (o * keep.Length + j) * inner, inner);
                int[] shape = successor == "fc" ? [outputs, keep.Length * inner] : [outputs, keep.Length, t.Shape[2], t.Shape[3]];
                return new TensorSnapshot(t.Layer, t.Tensor, shape, values);
            }
            return t;
        }

        var newWidths = widths.ToArray();
        newWidths[index] = keep.Length;
        return (newWidths, new Snapshot(snapshot.Epoch, snapshot.Step, snapshot.Tensors.Select(Prune).ToArray()));
    }

    /// <summary>A structurally pruned model, its sizes and its test metrics.</summary>
    public sealed record Result(int[] WidthsBefore, int[] WidthsAfter, Snapshot Pruned, (long Parameters, long MultiplyAccumulates) Before, (long Parameters, long MultiplyAccumulates) After,
        double Loss, double Accuracy, double MaxLogitDifference);

    /// <summary>
    /// Removes <paramref name="removed"/> filters of <paramref name="layer"/> from the run's final model,
    /// rebuilds the smaller model, evaluates it, and measures its largest logit difference from the
    /// masked model (float rounding only, if the removal is right). The run's model is restored.
    /// </summary>
    public static Result Evaluate(RunModel model, string layer, int[] removed)
    {
        var manifest = model.Manifest;
        if (manifest.Config.Model != "fourconv") throw new SettingException("Structural", "", $"supported for fourconv, not {manifest.Config.Model}");
        var d = manifest.Dataset;
        var widths = manifest.Config.Widths ?? FourConvNet.DefaultWidths;
        var (newWidths, pruned) = RemoveFilters(model.Final, widths, layer, removed, d.Height, d.Width);
        var before = FourConvNet.Cost(d.Channels, d.Height, d.Width, d.Classes, widths);
        var after = FourConvNet.Cost(d.Channels, d.Height, d.Width, d.Classes, newWidths);
        using var small = new FourConvNet(d.Channels, d.Height, d.Width, d.Classes, newWidths, manifest.Config.Dropout);
        ParameterLoader.Load(small, pruned, "the structurally pruned model");
        var (loss, accuracy) = TestEvaluation.TestMetrics(small, model.TestX, model.TestY);
        double maxDifference;
        model.ApplyPermanently(new FilterMask(layer, removed));
        using (var masked = TestEvaluation.Logits(model.Model, model.TestX))
        using (var smaller = TestEvaluation.Logits(small, model.TestX))
            maxDifference = (masked - smaller).abs().max().item<float>();
        // restore the model for later use
        ParameterLoader.Load(model.Model, model.Final, model.Run);
        return new Result(widths, newWidths, pruned, before, after, loss, accuracy, maxDifference);
    }
}
