using System.Text.Json;
using Thermo.Analysis.Run;

namespace Thermo.Trainer.Training;

/// <summary>How a training asks for its run directory.</summary>
public enum RunDirectoryMode
{
    /// <summary>A new run: the directory must not hold one (nor other files).</summary>
    Fresh,
    /// <summary>A new run, replacing whatever the directory holds.</summary>
    Replace,
    /// <summary>Continue the run the directory holds, from its last complete epoch (with more epochs if asked).</summary>
    Resume,
    /// <summary>
    /// For schedulers and protocols (a task may run twice): finish this configuration's run there —
    /// nothing to do when complete, resume an unfinished one, start one otherwise.
    /// </summary>
    Resumable,
}

/// <summary>What to do with a run directory.</summary>
public enum RunDirectoryAction
{
    /// <summary>Train from epoch 0 (after removing what <see cref="RunDirectoryPlan.ReplaceExisting"/> says).</summary>
    Start,
    /// <summary>Continue the existing run with <see cref="RunDirectoryPlan.Config"/>.</summary>
    Resume,
    /// <summary>The run is there and complete: nothing to train.</summary>
    Complete,
}

/// <summary>Why a run directory cannot be used as asked; the front end words the remedy.</summary>
public enum RunDirectoryConflict
{
    /// <summary>A fresh run asked for where a complete run is.</summary>
    HoldsCompleteRun,
    /// <summary>A fresh run asked for where an unfinished run is.</summary>
    HoldsUnfinishedRun,
    /// <summary>The directory holds files but no run.</summary>
    NotARun,
    /// <summary>A resume of a complete run without more epochs.</summary>
    AlreadyComplete,
    /// <summary>The directory holds a run of another experiment.</summary>
    AnotherExperiment,
    /// <summary>The directory holds a run of more epochs than asked.</summary>
    MoreEpochs,
    /// <summary>Fewer epochs asked for than the run has already completed.</summary>
    EpochsBelowProgress,
}

/// <summary>A run directory that cannot be used as asked: which, why, and the run it holds.</summary>
public sealed class RunDirectoryException(string directory, RunDirectoryConflict conflict, RunManifest? existing, string message)
    : Exception($"{directory}: {message}")
{
    public string Directory { get; } = directory;
    public RunDirectoryConflict Conflict { get; } = conflict;
    public RunManifest? Existing { get; } = existing;
}

/// <summary>The decision for one run directory: start, resume or nothing, with which configuration.</summary>
/// <param name="Action">What to do.</param>
/// <param name="Config">The configuration to train (a resume's: the run's own, with the epochs asked for).</param>
/// <param name="Existing">The run the directory holds, if any.</param>
/// <param name="ReplaceExisting">Remove the directory's contents once the new run is validated.</param>
/// <param name="Note">Why an existing run is replaced or reused, for progress (null: nothing to say).</param>
public sealed record RunDirectoryPlan(RunDirectoryAction Action, TrainConfig Config, RunManifest? Existing, bool ReplaceExisting, string? Note);

/// <summary>
/// The one place that decides how a run directory is created, resumed or reused — for <c>thermo
/// train</c>, the reproductions and sweeps, and Slurm tasks alike — with one idea of "the same
/// experiment", and the one child command line that trains a run in another process.
/// </summary>
public static class RunDirectory
{
    /// <summary>
    /// What makes two configurations the same experiment, for continuing or reusing a run: the whole
    /// configuration with the graph resolved as the run records it, less the epoch count (a run of
    /// fewer epochs is extended; one of more is refused on its own).
    /// </summary>
    public static string ExperimentKey(TrainConfig c) => JsonSerializer.Serialize(c with { Graph = c.ResolvedGraph, Epochs = 0 }, RunManifest.Json);

    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> are the same experiment (see <see cref="ExperimentKey"/>).</summary>
    public static bool SameExperiment(TrainConfig a, TrainConfig b) => ExperimentKey(a) == ExperimentKey(b);

    /// <summary>
    /// Decides what training <paramref name="config"/> in <paramref name="directory"/> means in
    /// <paramref name="mode"/>; raises <see cref="RunDirectoryException"/> when it cannot be done.
    /// For <see cref="RunDirectoryMode.Resume"/>, <paramref name="epochs"/> is the epoch count asked
    /// for (null: the run's own). Nothing is removed here: the caller removes what the plan says once
    /// the new run is validated.
    /// </summary>
    public static RunDirectoryPlan Prepare(TrainConfig config, string directory, RunDirectoryMode mode, int? epochs = null)
    {
        var existing = RunManifest.TryLoad(directory);
        bool nonEmpty = System.IO.Directory.Exists(directory) && System.IO.Directory.EnumerateFileSystemEntries(directory).Any();
        RunDirectoryException Conflict(RunDirectoryConflict conflict, string message) => new(directory, conflict, existing, message);
        switch (mode)
        {
            case RunDirectoryMode.Replace:
                return new(RunDirectoryAction.Start, config, existing, nonEmpty, null);
            case RunDirectoryMode.Fresh:
                if (existing is { Status: RunStatus.Complete })
                    throw Conflict(RunDirectoryConflict.HoldsCompleteRun, $"already holds a complete run ({existing.LastCompleteEpoch} epochs)");
                if (existing is not null)
                    throw Conflict(RunDirectoryConflict.HoldsUnfinishedRun, $"holds an unfinished run (last complete epoch {existing.LastCompleteEpoch})");
                if (nonEmpty) throw Conflict(RunDirectoryConflict.NotARun, "is not empty and holds no run");
                return new(RunDirectoryAction.Start, config, null, false, null);
            case RunDirectoryMode.Resume:
            {
                if (existing is null) throw new NoRunException(directory, nameof(RunDirectoryMode.Resume));
                var resumed = existing.Config with { Epochs = epochs ?? existing.Config.Epochs };
                if (existing.Status == RunStatus.Complete && resumed.Epochs <= existing.Config.Epochs)
                    throw Conflict(RunDirectoryConflict.AlreadyComplete, $"is already complete ({existing.Config.Epochs} epochs)");
                if (resumed.Epochs < existing.LastCompleteEpoch)
                    throw Conflict(RunDirectoryConflict.EpochsBelowProgress, $"{resumed.Epochs} epochs is below the run's last complete epoch {existing.LastCompleteEpoch}");
                return new(RunDirectoryAction.Resume, resumed, existing, false, null);
            }
            default:
                if (existing is null)
                {
                    if (nonEmpty) throw Conflict(RunDirectoryConflict.NotARun, "is not empty and holds no run");
                    return new(RunDirectoryAction.Start, config, null, false, null);
                }
                if (existing.Native is null)
                    // Trained before Thermo checked its native kernels: on AVX-512 machines its weights may
                    // be wrong (docs/NATIVE.md), so it is trained again rather than reused or continued.
                    return new(RunDirectoryAction.Start, config, existing, true,
                        $"retraining: {directory} was trained before Thermo verified its native kernels (no \"native\" in {RunLayout.ManifestFile})");
                if (!SameExperiment(existing.Config, config))
                    throw Conflict(RunDirectoryConflict.AnotherExperiment, $"holds a run of another configuration ({RunManifest.PathIn(directory)})");
                if (existing.Config.Epochs > config.Epochs)
                    throw Conflict(RunDirectoryConflict.MoreEpochs, $"holds a run of {existing.Config.Epochs} epochs, more than the configuration's {config.Epochs}");
                if (existing.Status == RunStatus.Complete && existing.Config.Epochs == config.Epochs)
                    return new(RunDirectoryAction.Complete, config, existing, false, $"reusing the complete run ({existing.LastCompleteEpoch} epochs)");
                if (existing.LastCompleteEpoch >= 0)
                    // A run of fewer epochs is extended to the configuration's.
                    return new(RunDirectoryAction.Resume, config, existing, false, null);
                // Started, but no epoch complete: nothing worth keeping.
                return new(RunDirectoryAction.Start, config, existing, true, null);
        }
    }

    /// <summary>
    /// The training the plan asks for, opened (its lock held, everything validated) and ready to run;
    /// null for <see cref="RunDirectoryAction.Complete"/>. An existing directory the plan replaces is
    /// removed only once the new run is validated.
    /// </summary>
    public static TrainingRun? Open(RunDirectoryPlan plan, string directory, string artifacts, ITrainingProgress progress)
    {
        if (plan.Note is not null) progress.Message("  " + plan.Note);
        switch (plan.Action)
        {
            case RunDirectoryAction.Complete:
                return null;
            case RunDirectoryAction.Resume:
                return TrainingRun.Resume(plan.Existing!, plan.Config, directory, artifacts, progress);
            default:
                // Everything (flags, data, model) is validated and the run's lock taken before an old
                // run is removed: a training writes nothing until it runs.
                var run = TrainingRun.Start(plan.Config, directory, artifacts, progress);
                try
                {
                    if (plan.ReplaceExisting) System.IO.Directory.Delete(directory, recursive: true);
                    return run;
                }
                catch
                {
                    run.Dispose();
                    throw;
                }
        }
    }

    /// <summary>
    /// The arguments of a child <c>thermo train</c> that trains <paramref name="directory"/> in
    /// <paramref name="mode"/> from the configuration in <paramref name="configFile"/> (unused for
    /// <see cref="RunDirectoryMode.Resume"/>), as protocols, sweeps and Slurm tasks start it: the one
    /// place the child's command line is written.
    /// </summary>
    public static IReadOnlyList<string> ChildArguments(string configFile, string directory, RunDirectoryMode mode = RunDirectoryMode.Resumable) => mode switch
    {
        RunDirectoryMode.Resume => ["train", "--resume", directory, "--quiet"],
        RunDirectoryMode.Replace => ["train", "--config", configFile, "--out", directory, "--force", "--quiet"],
        RunDirectoryMode.Fresh => ["train", "--config", configFile, "--out", directory, "--quiet"],
        _ => ["train", "--config", configFile, "--out", directory, "--resumable", "--quiet"],
    };
}
