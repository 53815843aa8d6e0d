namespace Thermo.Analysis.Run

open System.IO
open Thermo.Analysis

/// Where each file of a run directory lives: the one place the F# code spells a run-directory path
/// or file name. The names are literals (for `match` and attributes); the functions join them onto a
/// run directory. C# sees the functions as `RunLayout.Metrics(run)` and so on.
///
/// ```
/// RUN/run.json                  manifest
/// RUN/metrics.parquet           per-epoch metrics (MetricsTable)
/// RUN/gradnoise.parquet         per-epoch gradient noise (GradNoiseTable)
/// RUN/snapshots/epoch=….parquet per-epoch snapshots; snapshots/steps/ the per-step ones
/// RUN/checkpoint/epoch=NNNNN/   the last complete epoch's model and optimiser
/// RUN/analysis/*.parquet        `thermo analyze`'s tables (AnalysisOutput)
/// RUN/analysis-steps/*.parquet  the same tables over the per-step snapshots (`analyze --steps`)
/// RUN/pruning/                  pruning results, curves and table.md
/// RUN/report/                   the run's HTML report; report/ beside several runs compares them
/// RUN/source-metrics.parquet    a run imported from checkpoints: the source's own metrics
/// OUT/tensors.json              beside the tables of a checkpoint series' analysis: its tensors
/// ```
module RunLayout =
    /// The run's manifest.
    [<Literal>]
    let ManifestFile = "run.json"

    /// Per-epoch metrics.
    [<Literal>]
    let MetricsFile = "metrics.parquet"

    /// Per-epoch, per-layer gradient noise.
    [<Literal>]
    let GradNoiseFile = "gradnoise.parquet"

    /// Directory of the per-epoch snapshots.
    [<Literal>]
    let SnapshotsDirectory = "snapshots"

    /// Directory, inside `SnapshotsDirectory`, of the per-step snapshots.
    [<Literal>]
    let StepsDirectory = "steps"

    /// Directory of the checkpoints.
    [<Literal>]
    let CheckpointDirectory = "checkpoint"

    /// Directory of the analysis tables.
    [<Literal>]
    let AnalysisDirectory = "analysis"

    /// Directory of the analysis tables of the per-step snapshots (`analyze --steps`).
    [<Literal>]
    let StepAnalysisDirectory = "analysis-steps"

    /// Analysis table: temperatures of layers and groups.
    [<Literal>]
    let TemperatureFile = "temperature.parquet"

    /// Analysis table: instantaneous temperatures per epoch.
    [<Literal>]
    let InstantaneousFile = "instantaneous.parquet"

    /// Analysis table: MSD curves.
    [<Literal>]
    let MsdFile = "msd.parquet"

    /// Analysis table: fits (α, D, Spearman, gradient-noise decay).
    [<Literal>]
    let FitsFile = "fits.parquet"

    /// Directory of the pruning results.
    [<Literal>]
    let PruningDirectory = "pruning"

    /// Pruning table: one row per run × criterion × draw × experiment.
    [<Literal>]
    let ResultsFile = "results.parquet"

    /// Pruning table: prune-fraction curves.
    [<Literal>]
    let CurvesFile = "curves.parquet"

    /// Pruning table: paired comparisons of rows across runs (mean difference, interval, p-values).
    [<Literal>]
    let ComparisonsFile = "comparisons.parquet"

    /// The pruning results as a Markdown table.
    [<Literal>]
    let TableFile = "table.md"

    /// Directory, inside `PruningDirectory`, of the structurally pruned model (`prune --structural`).
    [<Literal>]
    let StructuralDirectory = "structural"

    /// Directory, inside `StructuralDirectory`, of the fine-tuned smaller model's run (`--finetune`).
    [<Literal>]
    let FinetuneDirectory = "finetune"

    /// Directory of the HTML report.
    [<Literal>]
    let ReportDirectory = "report"

    /// A run imported from checkpoints: the source's metrics, one row per logged time.
    [<Literal>]
    let SourceMetricsFile = "source-metrics.parquet"

    /// Beside the analysis tables of a checkpoint series: which tensors were analysed (key, layer,
    /// shape, dtype, the dimension of its units) and which were not, and why.
    [<Literal>]
    let TensorsFile = "tensors.json"

    /// The files of `AnalysisDirectory`, in the order `AnalysisOutput` writes them.
    [<CompiledName("AnalysisFiles")>]
    let analysisFiles = [| TemperatureFile; InstantaneousFile; MsdFile; FitsFile |]

    /// RUN/run.json.
    [<CompiledName("Manifest")>]
    let manifest (run: string) = Path.Combine(run, ManifestFile)

    /// RUN/metrics.parquet.
    [<CompiledName("Metrics")>]
    let metrics (run: string) = Path.Combine(run, MetricsFile)

    /// RUN/source-metrics.parquet of a run imported from checkpoints.
    [<CompiledName("SourceMetrics")>]
    let sourceMetrics (run: string) = Path.Combine(run, SourceMetricsFile)

    /// DIR/tensors.json beside the tables of a checkpoint series' analysis in DIR.
    [<CompiledName("Tensors")>]
    let tensors (dir: string) = Path.Combine(dir, TensorsFile)

    /// RUN/gradnoise.parquet.
    [<CompiledName("GradNoise")>]
    let gradNoise (run: string) = Path.Combine(run, GradNoiseFile)

    /// RUN/snapshots.
    [<CompiledName("Snapshots")>]
    let snapshots (run: string) = Path.Combine(run, SnapshotsDirectory)

    /// RUN/analysis-steps: the tables of the per-step analysis.
    [<CompiledName("StepAnalysis")>]
    let stepAnalysis (run: string) = Path.Combine(run, StepAnalysisDirectory)

    /// RUN/snapshots/steps.
    [<CompiledName("StepSnapshots")>]
    let stepSnapshots (run: string) = Path.Combine(run, SnapshotsDirectory, StepsDirectory)

    /// RUN/checkpoint.
    [<CompiledName("Checkpoints")>]
    let checkpoints (run: string) = Path.Combine(run, CheckpointDirectory)

    /// The checkpoint of epoch `epoch` relative to the run, as the manifest stores it: checkpoint/epoch=NNNNN.
    [<CompiledName("CheckpointName")>]
    let checkpointName (epoch: int) = Path.Combine(CheckpointDirectory, sprintf "epoch=%05d" epoch)

    /// RUN/analysis.
    [<CompiledName("Analysis")>]
    let analysis (run: string) = Path.Combine(run, AnalysisDirectory)

    /// RUN/analysis/NAME, NAME one of the analysis files (e.g. `TemperatureFile`).
    [<CompiledName("AnalysisTable")>]
    let analysisTable (run: string) (name: string) = Path.Combine(run, AnalysisDirectory, name)

    /// RUN/analysis/temperature.parquet.
    [<CompiledName("Temperature")>]
    let temperature (run: string) = analysisTable run TemperatureFile

    /// DIR/pruning (DIR a run, or a condition of a reproduction).
    [<CompiledName("Pruning")>]
    let pruning (dir: string) = Path.Combine(dir, PruningDirectory)

    /// DIR/pruning/results.parquet.
    [<CompiledName("PruningResults")>]
    let pruningResults (dir: string) = Path.Combine(dir, PruningDirectory, ResultsFile)

    /// DIR/pruning/curves.parquet.
    [<CompiledName("PruningCurves")>]
    let pruningCurves (dir: string) = Path.Combine(dir, PruningDirectory, CurvesFile)

    /// DIR/pruning/comparisons.parquet.
    [<CompiledName("PruningComparisons")>]
    let pruningComparisons (dir: string) = Path.Combine(dir, PruningDirectory, ComparisonsFile)

    /// DIR/pruning/table.md.
    [<CompiledName("PruningTable")>]
    let pruningTable (dir: string) = Path.Combine(dir, PruningDirectory, TableFile)

    /// RUN/report: the run's own HTML report.
    [<CompiledName("Report")>]
    let report (run: string) = Path.Combine(run, ReportDirectory)

    /// The report directory beside `run` (in the run's parent directory).
    [<CompiledName("ReportBeside")>]
    let reportBeside (run: string) =
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(run).TrimEnd('/')), ReportDirectory)

/// Raised wherever a run directory is expected and `Directory` holds no run (no run.json): one type
/// for every stage and protocol, so a front end words it once. `Setting` names the setting that gave
/// the directory in the library's own words ("Resume", "From"; "" for a plain argument), for the front
/// end to name its flag. `Below`: the directory was searched below too. `Message` is
/// "DIR: holds no run (no run.json)", or "… (no run.json in it or below it)". Several directories
/// searched together, none holding a run, are one fault with no one path: `Path` is then empty and
/// `Directories` lists them.
type NoRunException(directories: string[], setting: string, below: bool) =
    inherit ArtifactException(
        System.String.Join(", ", directories) + ": holds no run (no " + RunLayout.ManifestFile + (if below then " in it or below it)" else ")"),
        (if directories.Length = 1 then directories[0] else ""))

    /// `directory`, given by `setting`, holds no run (`below`: nor any directory below it).
    new(directory: string, setting: string, below: bool) = NoRunException([| directory |], setting, below)

    /// `directory` (a plain argument) holds no run.
    new(directory: string) = NoRunException([| directory |], "", false)

    /// `directory`, given by `setting`, holds no run.
    new(directory: string, setting: string) = NoRunException([| directory |], setting, false)

    /// The directory that holds no run (several, joined with ", ", when each was searched).
    member _.Directory = System.String.Join(", ", directories)
    /// Each directory that holds no run: one, or several searched together.
    member _.Directories = Array.copy directories
    /// The setting that gave the directory ("" for a plain argument).
    member _.Setting = setting
    /// Whether the directories below it were searched too.
    member _.Below = below
