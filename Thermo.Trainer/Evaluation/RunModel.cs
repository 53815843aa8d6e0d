using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Trainer.Data;
using Thermo.Trainer.Models;
using Thermo.Trainer.Native;
using Thermo.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Evaluation;

/// <summary>Test sets loaded once per process and shared by every run that trained on the same data.</summary>
public sealed class TestSetCache : IDisposable
{
    readonly Dictionary<(string, string?, int?, string?), (ImageDataset Data, Tensor X, Tensor Y)> sets = [];

    /// <summary>The test split of <paramref name="config"/>'s data, as tensors its model reads (images, or
    /// superpixel graphs), with the data set (for its digest).</summary>
    public (ImageDataset Data, Tensor X, Tensor Y) Get(TrainConfig config, string artifacts, Action<string> log)
    {
        var key = (config.Dataset, config.DataDir, config.TestLimit, config.ResolvedGraph);
        if (!sets.TryGetValue(key, out var set))
        {
            var data = DataSources.Load(config.Dataset, config.DataDir, artifacts, log);
            var test = data.Test.Take(config.TestLimit);
            var graphs = ModelInputs.Graphs(config.ResolvedGraph, data, artifacts, log);
            set = (data, ModelInputs.Of(test, graphs?.Test), tensor(test.Labels));
            sets[key] = set;
        }
        return set;
    }

    public void Dispose()
    {
        foreach (var (_, x, y) in sets.Values) { x.Dispose(); y.Dispose(); }
        sets.Clear();
    }
}

/// <summary>
/// A run's final model rebuilt from its directory alone (run.json names the model and its data; the
/// last complete epoch's snapshot holds every parameter and buffer), evaluated on its test set with
/// filters zeroed. Masks are applied in place and undone after each evaluation: the model is built
/// once per run, whatever the number of experiments.
/// </summary>
public sealed class RunModel : IMaskedEvaluator, IDisposable
{
    readonly Dictionary<string, (Tensor Weight, Tensor? Bias)> parameters = [];

    public string Run { get; }
    public RunManifest Manifest { get; }
    /// <summary>The snapshot the model was loaded from (the last complete epoch).</summary>
    public Snapshot Final { get; }
    public nn.Module<Tensor, Tensor> Model { get; }
    public Tensor TestX { get; }
    public Tensor TestY { get; }
    /// <summary>Test-set evaluations made so far.</summary>
    public int Evaluations { get; private set; }

    RunModel(string run, RunManifest manifest, Snapshot final, nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        (Run, Manifest, Final, Model, TestX, TestY) = (run, manifest, final, model, x, y);
        foreach (var (name, p) in model.named_parameters())
        {
            var (layer, tensorName) = ParameterLoader.SplitName(name);
            var entry = parameters.GetValueOrDefault(layer);
            parameters[layer] = tensorName == "weight" ? (p, entry.Bias) : tensorName == "bias" ? (entry.Weight, p) : entry;
        }
    }

    /// <summary>Opens a complete run; every failure names the run and what is missing.</summary>
    public static RunModel Open(string run, string artifacts, TestSetCache tests, Action<string> log)
    {
        if (!Directory.Exists(run)) throw new ThermoException($"{run}: run directory does not exist");
        var manifest = RunManifest.TryLoad(run) ?? throw new NoRunException(run);
        if (manifest.Status != RunStatus.Complete)
            throw new ThermoException($"{run}: the run is {manifest.Status.ToString().ToLowerInvariant()} (last complete epoch {manifest.LastCompleteEpoch}); resume its training to the end first");
        var files = SnapshotSeries.ListEpochFiles(run);
        var finalPath = files.Where(f => f.Time == manifest.LastCompleteEpoch).Select(f => f.Path).FirstOrDefault()
            ?? throw new ThermoException($"{run}: the final snapshot (epoch {manifest.LastCompleteEpoch}) is missing from {RunLayout.Snapshots(run)}");
        var final = SnapshotReader.ReadFile(finalPath);
        var config = manifest.Config;
        torch.set_num_threads(config.Threads > 0 ? config.Threads : Environment.ProcessorCount);
        var (data, x, y) = tests.Get(config, artifacts, log);
        if (data.Digest != manifest.Dataset.Digest)
            throw new ThermoException($"{run}: its data ({manifest.Dataset.Source}, {manifest.Dataset.Digest}) differ from what {config.Dataset} loads now ({data.Source}, {data.Digest})");
        var d = manifest.Dataset;
        var model = ModelFactory.Create(config.Model, d.Channels, d.Height, d.Width, d.Classes, config.Widths, config.Dropout, config.ResolvedGraph);
        ParameterLoader.Load(model, final, finalPath);
        var opened = new RunModel(run, manifest, final, model, x, y);
        opened.UseOwnKernels();
        return opened;
    }

    /// <summary>The convolution kernels the run was trained and evaluated with (run.json), so that its
    /// unmasked model reproduces the trainer's test metrics bit for bit; runs that predate the record
    /// use the kernels this process was configured with.</summary>
    public ConvolutionKernels Kernels => Manifest.Native?.Convolutions is { } name ? NativeSetup.Parse(name, RunManifest.PathIn(Run)) : NativeSetup.Configured;

    /// <summary>Switches this process to <see cref="Kernels"/> (runs of one prune may differ).</summary>
    public void UseOwnKernels()
    {
        if (NativeSetup.Convolutions != Kernels) NativeSetup.Use(Kernels);
    }

    /// <summary>The model's layers whose weight is a conv kernel (4-D), in order.</summary>
    public string[] ConvLayers => parameters.Where(p => p.Value.Weight is { } w && w.dim() == 4).Select(p => p.Key).ToArray();

    /// <summary>Number of filters (units) of a layer, or a message naming the layers there are.</summary>
    public int Filters(string layer)
    {
        LayerCheck.Exists(Run, layer, parameters.Where(q => q.Value.Weight is not null).Select(q => q.Key));
        return (int)parameters[layer].Weight!.shape[0];
    }

    /// <summary>Σ|w| of each filter's weights in the final snapshot (Li et al.'s criterion).</summary>
    public double[] FilterL1(string layer)
    {
        var t = Final.Tensors.First(t => t.Layer == layer && t.Tensor == "weight");
        return Kinematics.UnitL1Norms(t.Values.Length / t.Shape[0], t.Values);
    }

    /// <summary>Test loss and accuracy with the mask's filters (weights and bias) zeroed; restored afterwards.</summary>
    public (double Loss, double Accuracy) Evaluate(FilterMask mask)
    {
        Evaluations++;
        UseOwnKernels();
        if (mask.Units.Count == 0) return TestEvaluation.TestMetrics(Model, TestX, TestY);
        LayerCheck.Exists(Run, mask.Layer, parameters.Where(q => q.Value.Weight is not null).Select(q => q.Key));
        var (weight, bias) = parameters[mask.Layer];
        using var index = tensor(mask.Units.Select(u => (long)u).ToArray());
        Tensor savedWeight, savedBias;
        using (no_grad())
        {
            savedWeight = weight.index_select(0, index);
            savedBias = bias?.index_select(0, index) ?? empty(0);
            weight.index_fill_(0, index, 0);
            bias?.index_fill_(0, index, 0);
        }
        try
        {
            return TestEvaluation.TestMetrics(Model, TestX, TestY);
        }
        finally
        {
            using (no_grad())
            {
                weight.index_copy_(0, index, savedWeight);
                bias?.index_copy_(0, index, savedBias);
            }
            savedWeight.Dispose();
            savedBias.Dispose();
        }
    }

    /// <summary>Zeroes the mask's filters for good (for comparing with the structurally pruned model).</summary>
    public void ApplyPermanently(FilterMask mask)
    {
        var (weight, bias) = parameters[mask.Layer];
        using var index = tensor(mask.Units.Select(u => (long)u).ToArray());
        using var noGrad = no_grad();
        weight.index_fill_(0, index, 0);
        bias?.index_fill_(0, index, 0);
    }

    public void Dispose() => Model.Dispose();
}
