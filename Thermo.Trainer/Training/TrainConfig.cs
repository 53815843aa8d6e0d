using Thermo.Analysis;
namespace Thermo.Trainer.Training;

/// <summary>The full configuration of a training run, stored in run.json.</summary>
public sealed record TrainConfig
{
    public string Model { get; init; } = "fourconv";
    public string Dataset { get; init; } = "mnist";
    public string? DataDir { get; init; }
    public int Epochs { get; init; } = 60;
    public long Seed { get; init; } = 1;
    public string Optimizer { get; init; } = "adam";
    public double Lr { get; init; } = 1e-3;
    public double Momentum { get; init; } = 0.9;
    /// <summary>Torch's weight decay: the optimiser adds WeightDecay·w to every parameter's gradient, biases included.</summary>
    public double WeightDecay { get; init; } = 1e-3;
    /// <summary>
    /// Keras-style L2 regulariser (<c>kernel_regularizer=l2(L2)</c>): the loss gains L2·Σ‖kernel‖² over
    /// the conv and linear kernels, not biases or batch-norm scales, so their gradients gain 2·L2·w.
    /// </summary>
    public double L2 { get; init; }
    public double Dropout { get; init; } = 0.1;
    public int BatchSize { get; init; } = 128;
    /// <summary>Step schedule: multiply the learning rate by <see cref="LrGamma"/> every LrStep epochs (0 = constant).</summary>
    public int LrStep { get; init; }
    public double LrGamma { get; init; } = 0.1;
    /// <summary>
    /// Keras's time-based decay (the <c>decay</c> argument of Keras 2's optimisers): optimiser step s (0-based,
    /// counted over the whole run) uses lr / (1 + LrDecay·s), on top of the step schedule. 0 = off.
    /// </summary>
    public double LrDecay { get; init; }
    /// <summary>Adam's ε (added to the denominator √v̂ + ε): torch's default 1e-8; Keras's default is 1e-7.</summary>
    public double AdamEps { get; init; } = 1e-8;
    public int[]? Widths { get; init; }
    public int? TrainLimit { get; init; }
    public int? TestLimit { get; init; }
    /// <summary>Snapshot file format: parquet or arrow.</summary>
    public string Format { get; init; } = "parquet";
    /// <summary>Layers kept in snapshots (null = all).</summary>
    public string[]? SnapshotLayers { get; init; }
    /// <summary>Write a per-epoch snapshot every N epochs (epoch 0 and the last epoch always).</summary>
    public int SnapshotEvery { get; init; } = 1;
    /// <summary>Also write a snapshot after every optimiser step inside the last K epochs.</summary>
    public int StepSnapshotEpochs { get; init; }
    public int Threads { get; init; }
    /// <summary>Loss: ce (cross-entropy), or the partial local entropy losses pla and plea (docs/THEORY.md).</summary>
    public string Loss { get; init; } = "ce";
    /// <summary>Layers whose weights (not biases) the pla/plea losses smooth.</summary>
    public string[]? SmoothLayers { get; init; }
    /// <summary>Half-side R of the hyper-cube the smoothed weights are displaced in.</summary>
    public double Radius { get; init; } = 0.01;
    /// <summary>Displaced copies y per minibatch.</summary>
    public int Samples { get; init; } = 4;
    /// <summary>Start from the parameters and buffers of this snapshot file instead of a random initialisation.</summary>
    public string? InitFrom { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// Initialisation of the conv and linear kernels: default (each layer's own, as TorchSharp builds it),
    /// kaiming (He normal, fan-in, for ReLU; the partial-entropy paper's) or xavier (Glorot uniform);
    /// with kaiming or xavier, those layers' biases start at zero.
    /// </summary>
    public string Init { get; init; } = "default";
    /// <summary>
    /// gcn and gat only: the graph each image is seen as, slic (its own SLIC superpixels, about 75 nodes,
    /// as the graph-network paper's data) or tiles (one fixed 4×4-pixel tiling for every image). Null means
    /// slic for them; a run records the graph it used (<see cref="ResolvedGraph"/>). Other models read
    /// images and take none.
    /// </summary>
    public string? Graph { get; init; }

    /// <summary>The graph the model sees: <see cref="Graph"/>, slic for gcn and gat given none, null for other models.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? ResolvedGraph => Thermo.Trainer.Models.ImageGraphs.Resolve(Model, Graph);

    /// <summary>
    /// A configuration as read from a run.json whose data had the digest <paramref name="dataDigest"/>:
    /// run.json files written before <see cref="Graph"/> existed record none, and their gcn and gat saw
    /// the tiling (the only graph there was), so they read as tiles; a run recorded as <c>mnist</c> on the
    /// 10,000-digit set (its digest says so) was made before that name meant the standard split, and
    /// reads as <c>mnist-10k</c>. A run written since records both as they are.
    /// </summary>
    public TrainConfig AsRecordedByRun(string dataDigest)
    {
        var config = Graph is null && Thermo.Trainer.Models.ImageGraphs.TakesGraph(Model) ? this with { Graph = Thermo.Trainer.Models.ImageGraphs.Tiles } : this;
        return config with { Dataset = Thermo.Trainer.Data.DataSources.NameOfRecorded(Dataset, DataDir, dataDigest) };
    }

    /// <summary>Learning rate during 1-based epoch <paramref name="epoch"/> under the step schedule.</summary>
    public double LearningRateAt(int epoch) => LrStep <= 0 ? Lr : Lr * Math.Pow(LrGamma, (epoch - 1) / LrStep);

    /// <summary>
    /// Learning rate of the optimiser step that follows <paramref name="stepsTaken"/> steps, inside 1-based
    /// epoch <paramref name="epoch"/>: the step schedule's rate divided by Keras's 1 + LrDecay·stepsTaken.
    /// </summary>
    public double LearningRateAt(int epoch, long stepsTaken) => LearningRateAt(epoch) / (1 + LrDecay * stepsTaken);

    /// <summary>Whether the per-epoch snapshot of <paramref name="epoch"/> is written.</summary>
    public bool SnapshotsEpoch(int epoch) => epoch == 0 || epoch == Epochs || epoch % SnapshotEvery == 0;

    /// <summary>Checks value ranges; throws <see cref="Thermo.Analysis.SettingException"/> naming the setting (a property of this record).</summary>
    public void Validate()
    {
        if (Epochs <= 0) throw new SettingException(nameof(Epochs), "", $"must be positive, got {Epochs}");
        if (!(Lr > 0) || double.IsInfinity(Lr)) throw new SettingException(nameof(Lr), "", $"must be positive, got {Lr}");
        if (BatchSize <= 0) throw new SettingException(nameof(BatchSize), "", $"must be positive, got {BatchSize}");
        if (WeightDecay < 0) throw new SettingException(nameof(WeightDecay), "", $"must be non-negative, got {WeightDecay}");
        if (!(L2 >= 0) || double.IsInfinity(L2)) throw new SettingException(nameof(L2), "", $"must be non-negative, got {L2}");
        if (Momentum < 0) throw new SettingException(nameof(Momentum), "", $"must be non-negative, got {Momentum}");
        if (Optimizer is not ("adam" or "sgd")) throw new SettingException(nameof(Optimizer), "", $"unknown optimizer '{Optimizer}' (known: adam, sgd)");
        if (Format is not ("parquet" or "arrow")) throw new SettingException(nameof(Format), "", $"unknown format '{Format}' (known: parquet, arrow)");
        if (SnapshotEvery <= 0) throw new SettingException(nameof(SnapshotEvery), "", $"must be positive, got {SnapshotEvery}");
        if (StepSnapshotEpochs < 0) throw new SettingException(nameof(StepSnapshotEpochs), "", $"must be non-negative, got {StepSnapshotEpochs}");
        if (LrStep < 0) throw new SettingException(nameof(LrStep), "", $"must be non-negative, got {LrStep}");
        if (!(LrDecay >= 0) || double.IsInfinity(LrDecay)) throw new SettingException(nameof(LrDecay), "", $"must be non-negative, got {LrDecay}");
        if (!(AdamEps > 0) || double.IsInfinity(AdamEps)) throw new SettingException(nameof(AdamEps), "", $"must be positive, got {AdamEps}");
        if (!(LrGamma > 0)) throw new SettingException(nameof(LrGamma), "", $"must be positive, got {LrGamma}");
        if (TrainLimit is <= 0) throw new SettingException(nameof(TrainLimit), "", $"must be positive, got {TrainLimit}");
        if (TestLimit is <= 0) throw new SettingException(nameof(TestLimit), "", $"must be positive, got {TestLimit}");
        if (Threads < 0) throw new SettingException(nameof(Threads), "", $"must be non-negative, got {Threads}");
        if (Init is not ("default" or "kaiming" or "xavier")) throw new SettingException(nameof(Init), "", $"unknown initialisation '{Init}' (known: default, kaiming, xavier)");
        if (Graph is not null && !Thermo.Trainer.Models.ImageGraphs.Names.Contains(Graph)) throw new SettingException(nameof(Graph), "", $"unknown graph '{Graph}' (known: {string.Join(", ", Thermo.Trainer.Models.ImageGraphs.Names)})");
        if (Graph is not null && Thermo.Trainer.Models.ModelFactory.Names.Contains(Model) && !Thermo.Trainer.Models.ImageGraphs.TakesGraph(Model)) throw new SettingException(nameof(Graph), "", $"only gcn and gat see images as graphs; {Model} reads the images themselves");
        if (Device is not ("cpu" or "cuda")) throw new SettingException(nameof(Device), "", $"unknown device '{Device}' (known: cpu, cuda)");
        if (Loss is not ("ce" or "pla" or "plea")) throw new SettingException(nameof(Loss), "", $"unknown loss '{Loss}' (known: ce, pla, plea)");
        if (Loss != "ce" && SmoothLayers is not { Length: > 0 }) throw new SettingException(nameof(SmoothLayers), "", $"the {Loss} loss needs the layers to smooth (e.g. fc1)");
        if (Loss != "ce" && !(Radius > 0)) throw new SettingException(nameof(Radius), "", $"must be positive, got {Radius}");
        if (Loss != "ce" && Samples < 1) throw new SettingException(nameof(Samples), "", $"must be at least 1, got {Samples}");
    }
}
