using System.Diagnostics;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Trainer;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Protocols;

/// <summary>What every reproduction does with its trainings: reuse, resume or train each run, and tell
/// whether a kept run is the protocol's.</summary>
public static class ProtocolRuns
{
    /// <summary>The setting of a reproduction's directory, as errors name it (the CLI's --out).</summary>
    public const string Out = "Out";

    /// <summary>
    /// What makes a ledger entry this protocol's run: the configuration, less what does not change the
    /// experiment — the thread count and where the data were read from (the data themselves are checked
    /// by name and digest in the manifest) — so a ledger made at --threads 1 is tabulated at any.
    /// </summary>
    public static string LedgerKey(TrainConfig c) => RunDirectory.ExperimentKey(c with { Threads = 0, DataDir = null });

    /// <summary>Refuses a ledger entry that is not <paramref name="config"/>'s run (or not a run at all), or whose files differ from its digest record.</summary>
    public static void CheckLedgerEntry(string entry, TrainConfig config)
    {
        PruningLedger.Verify(entry);
        var kept = RunManifest.TryLoad(entry) ?? throw new ThermoException($"{entry}: a ledger entry without {RunLayout.ManifestFile}");
        if (LedgerKey(kept.Config) != LedgerKey(config) || kept.Config.Epochs != config.Epochs)
            throw new SettingException("Ledger", entry, "holds a run of another configuration; choose another ledger");
    }

    /// <summary>Reuses a complete run of the same experiment, resumes an unfinished one, trains a missing one
    /// (<see cref="RunDirectoryMode.Resumable"/>), holding the run's lock throughout.</summary>
    public static void TrainOrReuse(TrainConfig config, string runDir, string artifacts, ITrainingProgress progress)
    {
        using var runLock = RunLock.Acquire(runDir);
        using var trainer = RunDirectory.Open(RunDirectory.Prepare(config, runDir, RunDirectoryMode.Resumable), runDir, artifacts, progress);
        trainer?.Run();
    }

    /// <summary>
    /// Trains <paramref name="runs"/> as child <c>thermo train --config C --out RUN --resumable</c>
    /// processes, <paramref name="jobs"/> at a time (each configuration written under
    /// <paramref name="configs"/> first); <c>--resumable</c> reuses a complete run and resumes an
    /// interrupted one. <paramref name="finished"/> is called with each run's index as it completes, on
    /// this thread. The first failure stops the others and is reported with the child's message.
    /// </summary>
    public static void TrainInChildren(IReadOnlyList<(TrainConfig Config, string Directory)> runs, string configs, int jobs,
        Func<IReadOnlyList<string>, ProcessStartInfo> thermo, ITrainingProgress progress, Action<int> finished)
    {
        if (runs.Count == 0) return;
        Directory.CreateDirectory(configs);
        var todo = new Queue<int>(Enumerable.Range(0, runs.Count));
        var running = new List<(int Index, Process Process, Task<string> Error)>();
        while (todo.Count > 0 || running.Count > 0)
        {
            while (todo.Count > 0 && running.Count < jobs)
            {
                var i = todo.Dequeue();
                var (config, dir) = runs[i];
                var file = Path.Combine(configs, $"{Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(dir)))}-{Path.GetFileName(dir)}.json");
                AtomicFiles.WriteAllText(file, JsonSerializer.Serialize(config, RunManifest.Json));
                var process = Process.Start(thermo(RunDirectory.ChildArguments(file, dir)))!;
                running.Add((i, process, process.StandardError.ReadToEndAsync()));
                _ = process.StandardOutput.ReadToEndAsync();
                progress.Message($"training {dir}");
            }
            var done = running.FirstOrDefault(r => r.Process.HasExited);
            if (done.Process is null) { Thread.Sleep(200); continue; }
            running.Remove(done);
            try
            {
                if (done.Process.ExitCode != 0) throw new ThermoException($"training {runs[done.Index].Directory} failed: {done.Error.Result.Trim()}");
                finished(done.Index);
            }
            catch
            {
                // No child outlives the failure; each resumes from its checkpoint on the next call.
                foreach (var r in running) r.Process.Kill(true);
                throw;
            }
        }
    }
}
