using System.Diagnostics;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Cli;
using Thermo.Pipeline.Protocols;
using Thermo.Pipeline.Pruning;
using Thermo.Trainer.Tests;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary>Nothing lost, nothing silently wrong: missing snapshots, interrupted writes, concurrent trainings, full disks, edited ledgers.</summary>
/// <summary>A tiny reproduction (3 runs, 3 epochs) trained once with a ledger, which tests copy and then change.</summary>
public sealed class TrainedReproduction : IDisposable
{
    readonly TempDir dir = new();
    public string Data { get; }

    public TrainedReproduction()
    {
        Data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        var first = ThermoProcess.Run(dir.Path, IntegrityTests.Reproduction(dir["copy"], Data, "3"));
        if (first.Code != 0) throw new InvalidOperationException(first.Err);
    }

    /// <summary>A copy of the trained work and ledger directories in <paramref name="into"/>.</summary>
    public void CopyTo(TempDir into)
    {
        foreach (var name in new[] { "work", "ledger" })
            Copy(dir[$"copy/{name}"], into[name]);
    }

    static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var sub in Directory.GetDirectories(from)) Copy(sub, Path.Combine(to, Path.GetFileName(sub)));
    }

    public void Dispose() => dir.Dispose();
}

public class IntegrityTests(TrainedReproduction trained) : IClassFixture<TrainedReproduction>
{
    static string Train(TempDir dir, string name, int epochs = 3)
    {
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], 256, 64), epochs);
        using var run = TrainingRun.Start(config, dir[name], dir.Path, new SilentProgress());
        run.Run();
        return dir[name];
    }

    /// <summary>The hidden leftovers of interrupted writes in a directory (temporary files and directories).</summary>
    static string[] Leftovers(string directory) =>
        Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).Where(n => n!.StartsWith('.') && !n.EndsWith(".lock") && !n.EndsWith(".holder")).ToArray()!;

    [Fact]
    public void A_missing_snapshot_is_named_by_every_stage_and_only_an_explicit_no_manifest_infers_the_spacing()
    {
        using var dir = new TempDir();
        var run = Train(dir, "run");
        File.Delete(Path.Combine(run, "snapshots", "epoch=00002.parquet"));

        var analyze = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2");
        Assert.Equal(ExitCodes.BadInput, analyze.Code);
        Assert.Contains("lacks the snapshots of epochs 2 ", analyze.Err);
        Assert.False(Directory.Exists(Path.Combine(run, "analysis")), "analyze wrote nothing");

        var prune = ThermoProcess.Run(dir.Path, "prune", run, "--analyze", "last:2", "--curves", "none", "--draws", "1");
        Assert.Equal(ExitCodes.BadInput, prune.Code);
        Assert.Contains("epochs 2 ", prune.Err);
        Assert.False(Directory.Exists(Path.Combine(run, "pruning")), "prune wrote nothing");

        var sweep = ThermoProcess.Run(dir.Path, "sweep", "--from", run, "--lr", "1e-3,2e-3", "--epochs", "1", "--out", dir["sweep"]);
        Assert.Equal(ExitCodes.BadInput, sweep.Code);
        Assert.Contains("epochs 2 ", sweep.Err);
        Assert.False(Directory.Exists(dir["sweep"]), "sweep wrote nothing");

        var ledger = Assert.Throws<ArtifactException>(() => PruningLedger.Add(run, dir["ledger/l2=0/seed-1"]));
        Assert.Contains("epochs 2 ", ledger.Message);
        Assert.False(Directory.Exists(dir["ledger/l2=0/seed-1"]));

        // Asked explicitly, the analysis takes the files as they are and says so in its output and tables.
        var inferred = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2", "--no-manifest");
        Assert.True(inferred.Code == 0, inferred.Err);
        Assert.Contains(SnapshotSeries.InferredNote, inferred.Out + inferred.Err);
        var rules = Table.GetStrings(Table.Read(RunLayout.Temperature(run), "temperature"), "window_rule", RunLayout.TemperatureFile);
        Assert.All(rules, r => Assert.Contains(SnapshotSeries.InferredNote, r));

        // The report reads every snapshot for its weight figures: named, nothing written.
        var report = ThermoProcess.Run(dir.Path, "report", run);
        Assert.Equal(ExitCodes.BadInput, report.Code);
        Assert.Contains("epochs 2 ", report.Err);
        Assert.False(Directory.Exists(Path.Combine(run, "report")), "report wrote nothing");
    }

    [Fact]
    public void Snapshots_beyond_the_last_complete_epoch_are_not_read_and_declared_step_snapshots_are_checked()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], 256, 64), 3) with { StepSnapshotEpochs = 1 };
        using (var training = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) training.Run();
        var run = dir["run"];
        var plan = SnapshotSeries.ReadPlan(run)!.Value;
        // 256 images in batches of 64: 4 steps an epoch; the last epoch's steps 9..12.
        Assert.Equal([9L, 10, 11, 12], SnapshotSeries.ExpectedSteps(plan));
        Assert.Equal([0, 1, 2, 3], SnapshotSeries.ExpectedEpochs(plan));

        // A training that has written epoch 4's snapshot but not yet committed the epoch: not read.
        File.Copy(Path.Combine(run, "snapshots", "epoch=00003.parquet"), Path.Combine(run, "snapshots", "epoch=00004.parquet"));
        Assert.Equal([0, 1, 2, 3], SnapshotSeries.EpochFiles(run, SnapshotSpacing.FromManifest).Select(f => f.Time));
        Assert.Equal(5, SnapshotSeries.EpochFiles(run, SnapshotSpacing.InferredFromFiles).Length);

        var steps = Path.Combine(run, "snapshots", "steps");
        File.Delete(SnapshotSeries.ListStepFiles(run).Single(f => f.Time == 11).Path);
        var e = Assert.Throws<ArtifactException>(() => SnapshotSeries.StepFiles(run, SnapshotSpacing.FromManifest));
        Assert.Contains("steps 11 ", e.Message);
        var analyze = ThermoProcess.Run(dir.Path, "analyze", run, "--steps", "--window", "last:3");
        Assert.Equal(ExitCodes.BadInput, analyze.Code);
        Assert.Contains("steps 11 ", analyze.Err);

        // Without run.json the series is unknown: named, unless the spacing is to be inferred.
        File.Delete(RunLayout.Manifest(run));
        var unknown = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2");
        Assert.Equal(ExitCodes.BadInput, unknown.Code);
        Assert.Contains("--no-manifest", unknown.Err);
    }

    /// <summary>
    /// Runs thermo with THERMO_CRASH_AT = 1, 2, … until a run gets through all its write points; after
    /// each kill, <paramref name="check"/> sees what a reader would. Returns the number of write points.
    /// </summary>
    static int KillAtEveryWritePoint(string artifacts, Action<int> check, params string[] args)
    {
        for (int point = 1; point < 200; point++)
        {
            var psi = ThermoProcess.StartInfo(artifacts, args);
            psi.Environment[WritePoints.Variable] = point.ToString();
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            _ = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(true); throw new TimeoutException(string.Join(' ', args)); }
            if (p.ExitCode == 0) { check(point); return point - 1; }
            Assert.True(err.Result.Contains($"crash point {point}:"), $"thermo {string.Join(' ', args)} at point {point} failed otherwise: {err.Result}");
            check(point);
        }
        throw new InvalidOperationException("more than 200 write points");
    }

    static (int From, int To)[] Windows(string run)
    {
        var table = Table.Read(RunLayout.Temperature(run), "temperature");
        var from = Table.GetInts(table, "window_from", RunLayout.TemperatureFile);
        var to = Table.GetInts(table, "window_to", RunLayout.TemperatureFile);
        return from.Zip(to).Distinct().ToArray();
    }

    /// <summary>The four analysis tables are all there and were computed over one window: old or new, never a mix.</summary>
    static (int From, int To) CompleteAnalysis(string run)
    {
        foreach (var file in RunLayout.AnalysisFiles)
            Assert.True(File.Exists(Path.Combine(RunLayout.Analysis(run), file)), $"analysis/{file} missing: a partial set");
        var windows = Windows(run);
        Assert.Single(windows);
        var instantaneous = Table.Read(Path.Combine(RunLayout.Analysis(run), RunLayout.InstantaneousFile), "instantaneous");
        var epochs = Table.GetInts(instantaneous, "epoch", RunLayout.InstantaneousFile);
        Assert.Equal(windows[0].From + 1, epochs.Min());
        Assert.Equal(windows[0].To, epochs.Max());
        return windows[0];
    }

    [Fact]
    public void An_analysis_or_pruning_killed_at_any_write_point_leaves_the_old_set_or_the_new_one()
    {
        using var dir = new TempDir();
        var run = Train(dir, "run", 4);

        // First analysis: before its swap nothing, after it the whole new set.
        int points = KillAtEveryWritePoint(dir.Path, _ =>
        {
            if (Directory.Exists(RunLayout.Analysis(run))) Assert.Equal((2, 4), CompleteAnalysis(run));
        }, "analyze", run, "--window", "last:2");
        Assert.True(points >= 2, $"only {points} write points");
        // Re-analysis over another window: the old set (2..4) or the new one (1..4) at every point.
        var seen = new HashSet<(int, int)>();
        KillAtEveryWritePoint(dir.Path, _ => seen.Add(CompleteAnalysis(run)), "analyze", run, "--window", "last:3");
        Assert.Equal([(1, 4), (2, 4)], seen.Order());
        Assert.Empty(Leftovers(run));

        // Pruning: results and curves appear together.
        KillAtEveryWritePoint(dir.Path, _ =>
        {
            WholePruning(run);
            if (Directory.Exists(RunLayout.Pruning(run))) Assert.True(File.Exists(RunLayout.PruningCurves(run)), "results without the curves asked for");
        }, "prune", run, "--curves", "layer", "--draws", "1", "--criteria", "temperature,l1");
        Assert.Empty(Leftovers(run));
    }

    /// <summary>A report directory, when there is one, holds whole pages (the interactive page and the figures).</summary>
    static void WholeReport(string run)
    {
        var report = Path.Combine(run, RunLayout.ReportDirectory);
        if (!Directory.Exists(report)) return;
        foreach (var page in new[] { "index.html", "figures.html" })
            Assert.EndsWith("</html>", File.ReadAllText(Path.Combine(report, page)).TrimEnd());
    }

    /// <summary>A pruning directory, when there is one, holds readable results and, where curves were asked
    /// for, readable curves of the same run: never curves alone or a file cut short.</summary>
    static void WholePruning(string run)
    {
        var pruning = RunLayout.Pruning(run);
        if (!Directory.Exists(pruning)) return;
        var results = PruningFiles.ReadResults(Path.Combine(pruning, RunLayout.ResultsFile));
        Assert.NotEmpty(results);
        var curves = Path.Combine(pruning, RunLayout.CurvesFile);
        if (File.Exists(curves))
            Assert.Equal(results.Select(r => r.Run).Distinct(), PruningFiles.ReadCurves(curves).Select(p => p.Run).Distinct());
    }

    /// <summary>A reproduction's tables directory agrees with itself: README embeds table.md, whose run count is the results'. Returns that count.</summary>
    static int WholeTables(string tables)
    {
        var readme = File.ReadAllText(Path.Combine(tables, "README.md"));
        var table = File.ReadAllText(Path.Combine(tables, "l2=0.001", RunLayout.TableFile));
        Assert.Contains(table, readme);
        int runs = PruningFiles.ReadResults(Path.Combine(tables, "l2=0.001", RunLayout.ResultsFile)).Select(r => r.Run).Distinct().Count();
        Assert.Contains($"({runs} runs", table);
        return runs;
    }

    [Fact]
    public void A_report_killed_at_any_write_point_leaves_a_whole_page_or_none()
    {
        using var dir = new TempDir();
        var run = Train(dir, "run", 4);
        Assert.Equal(0, ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2").Code);
        KillAtEveryWritePoint(dir.Path, _ => WholeReport(run), "report", run);
        Assert.Empty(Leftovers(run));
    }

    internal static string[] Reproduction(string home, string data, string runs, params string[] more) =>
        ["reproduce", "pruning-paper", "--data-dir", data, "--runs", runs, "--epochs", "3", "--window", "last:2", "--threads", "1",
         "--curves", "none", "--draws", "2", "--out", Path.Combine(home, "work"), "--ledger", Path.Combine(home, "ledger"), .. more];

    /// <summary>
    /// Each stage killed at random moments (THERMO_KILLS times each, 3 by default; <c>build.fsx soak</c> runs
    /// 20), alternating two invocations whose outputs differ: every time, each output set a reader can see is
    /// whole, the old one or the new one; the next complete run leaves no leftovers.
    /// </summary>
    [Fact]
    public void Every_stage_killed_at_random_moments_leaves_the_old_set_or_the_new_one()
    {
        int kills = int.TryParse(Environment.GetEnvironmentVariable("THERMO_KILLS"), out var k) && k > 0 ? k : 3;
        using var dir = new TempDir();
        trained.CopyTo(dir);
        var data = trained.Data;
        var run = dir["work/l2=0.001/runs/seed-1"];
        var tables = dir["ledger/tables"];
        Assert.Equal(0, ThermoProcess.Run(dir.Path, "report", run).Code);
        var stages = new (string[][] Invocations, Action Check)[]
        {
            ([["analyze", run, "--window", "last:2"], ["analyze", run, "--window", "last:1"]], () => CompleteAnalysis(run)),
            ([["prune", run, "--curves", "layer", "--draws", "1"], ["prune", run, "--curves", "layer", "--draws", "2"]], () => WholePruning(run)),
            ([["report", run]], () => WholeReport(run)),
            ([Reproduction(dir.Path, data, "2", "--no-train"), Reproduction(dir.Path, data, "3", "--no-train")], () => WholeTables(tables)),
        };
        var random = new Random(11);
        foreach (var (invocations, check) in stages)
        {
            for (int i = 0; i < kills; i++)
            {
                using var p = Process.Start(ThermoProcess.StartInfo(dir.Path, invocations[i % invocations.Length]))!;
                _ = p.StandardOutput.ReadToEndAsync();
                _ = p.StandardError.ReadToEndAsync();
                Thread.Sleep(random.Next(200, 3000));
                if (!p.HasExited) p.Kill(true);
                p.WaitForExit();
                check();
            }
            var whole = ThermoProcess.Run(dir.Path, invocations[0]);
            Assert.True(whole.Code == 0, whole.Err);
            check();
        }
        Assert.Empty(Leftovers(run));
        Assert.Empty(Leftovers(dir["ledger"]));
    }

    [Fact]
    public void Interrupted_directory_swaps_are_cleaned_up_or_restored_by_the_next_write()
    {
        using var dir = new TempDir();
        var target = dir["out"];
        AtomicFiles.ReplaceDirectory(target, t => File.WriteAllText(Path.Combine(t, "a"), "old"));
        // What a process killed between the two renames of the fallback would leave: no directory, the
        // old one aside, the new one unfinished; and a finished swap's old copy of another dead process.
        Directory.Move(target, dir[".out.999999.old"]);
        Directory.CreateDirectory(dir[".out.999998.tmp"]);
        AtomicFile.cleanLeftovers(Path.GetFullPath(target));
        Assert.Equal("old", File.ReadAllText(Path.Combine(target, "a")));
        Assert.Empty(Leftovers(dir.Path));
        AtomicFiles.ReplaceDirectory(target, t => File.WriteAllText(Path.Combine(t, "a"), "new"));
        Assert.Equal("new", File.ReadAllText(Path.Combine(target, "a")));
        Assert.Empty(Leftovers(dir.Path));
    }

    [Fact]
    public void A_second_training_of_a_run_is_refused_naming_the_first_and_a_reader_sees_only_complete_epochs()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 1024, 64);
        var run = dir["run"];
        string[] train = ["train", "--data-dir", data, "--epochs", "400", "--batch-size", "64", "--widths", "4,4,8,8", "--threads", "1", "--out", run, "--resumable"];
        using var first = Process.Start(ThermoProcess.StartInfo(dir.Path, train))!;
        _ = first.StandardOutput.ReadToEndAsync();
        _ = first.StandardError.ReadToEndAsync();
        try
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while ((RunManifest.TryLoadQuietly(run)?.LastCompleteEpoch ?? -1) < 3)
            {
                Assert.False(first.HasExited, "the first training ended early");
                Assert.True(DateTime.UtcNow < deadline, "no progress");
                Thread.Sleep(20);
            }
            var second = ThermoProcess.Run(dir.Path, train);
            Assert.Equal(ExitCodes.BadInput, second.Code);
            Assert.Contains($"pid {first.Id} on {Environment.MachineName}", second.Err);
            var resume = ThermoProcess.Run(dir.Path, "train", "--resume", run, "--epochs", "500");
            Assert.Equal(ExitCodes.BadInput, resume.Code);
            Assert.Contains($"pid {first.Id}", resume.Err);

            // While it trains, analyze reads complete epochs only, however far the writer has got.
            var analyze = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2", "--json");
            Assert.True(analyze.Code == 0, analyze.Err);
            var complete = RunManifest.TryLoadQuietly(run)!.LastCompleteEpoch;
            var windowTo = System.Text.Json.JsonDocument.Parse(analyze.Out).RootElement[0].GetProperty("window").GetProperty("to").GetInt32();
            Assert.True(windowTo <= complete, $"analysed through epoch {windowTo}, but only {complete} were complete");
        }
        finally
        {
            first.Kill(true);
            first.WaitForExit();
        }
        // The holder gone (killed: the system released its lock), the run resumes.
        var after = ThermoProcess.Run(dir.Path, "train", "--resume", run, "--epochs", (RunManifest.TryLoadQuietly(run)!.LastCompleteEpoch + 1).ToString());
        Assert.True(after.Code == 0, after.Err);
    }

    [Fact]
    public void A_tabulation_killed_at_any_write_point_leaves_whole_tables_and_an_edited_ledger_entry_or_another_experiment_is_refused()
    {
        using var dir = new TempDir();
        trained.CopyTo(dir);
        var data = trained.Data;
        string[] Args(string runs, params string[] more) => Reproduction(dir.Path, data, runs, more);
        var tables = dir["ledger/tables"];
        var index = File.ReadAllText(dir["ledger/README.md"]);
        Assert.Contains("tables/README.md", index);

        // Tabulating 2 of the 3 runs, killed at every write point: README, table and results always agree.
        var seen = new HashSet<int>();
        KillAtEveryWritePoint(dir.Path, _ => seen.Add(WholeTables(tables)), Args("2", "--no-train"));
        Assert.Equal([2, 3], seen.Order());
        Assert.Equal(index, File.ReadAllText(dir["ledger/README.md"]));
        Assert.Empty(Leftovers(dir["ledger"]));

        // An entry edited after it was made is named before anything is built from it; the tables stay.
        var metrics = dir["ledger/l2=0.001/seed-2/metrics.parquet"];
        var original = File.ReadAllBytes(metrics);
        var edited = (byte[])original.Clone();
        edited[edited.Length / 2] ^= 0x01;
        File.WriteAllBytes(metrics, edited);
        var readmeBefore = File.ReadAllText(Path.Combine(tables, "README.md"));
        var tampered = ThermoProcess.Run(dir.Path, Args("3", "--no-train"));
        Assert.Equal(ExitCodes.BadInput, tampered.Code);
        Assert.Contains("seed-2: metrics.parquet has changed", tampered.Err);
        Assert.Equal(readmeBefore, File.ReadAllText(Path.Combine(tables, "README.md")));
        File.WriteAllBytes(metrics, original);
        File.WriteAllText(dir["ledger/l2=0.001/seed-1/extra.txt"], "x");
        var added = ThermoProcess.Run(dir.Path, Args("3", "--no-train"));
        Assert.Equal(ExitCodes.BadInput, added.Code);
        Assert.Contains("extra.txt was added", added.Err);
        File.Delete(dir["ledger/l2=0.001/seed-1/extra.txt"]);
        Assert.Equal(0, ThermoProcess.Run(dir.Path, Args("3", "--no-train")).Code);

        // A ledger entry is read-only: pruning or reporting it in place would change its recorded files.
        foreach (var stage in new[] { new[] { "prune", dir["ledger/l2=0.001/seed-1"] }, ["report", dir["ledger/l2=0.001/seed-1"]] })
        {
            var refused = ThermoProcess.Run(dir.Path, stage);
            Assert.Equal(ExitCodes.BadInput, refused.Code);
            Assert.Contains("read-only", refused.Err);
        }
        PruningLedger.Verify(dir["ledger/l2=0.001/seed-1"]);

        // Another experiment in the same ledger would overwrite this one's tables: refused.
        var other = ThermoProcess.Run(dir.Path, "reproduce", "partial-entropy", "--data-dir", data, "--runs", "1", "--epochs", "1", "--losses", "pla",
            "--smoothings", "fc1", "--radii", "0.1", "--no-train", "--ledger", dir["ledger"]);
        Assert.Equal(ExitCodes.BadInput, other.Code);
        Assert.Contains("holds the pruning-paper experiment", other.Err);
    }

    /// <summary>Runs a shell command as root; false when it cannot (not root, or no such privilege here).</summary>
    static bool Root(string command)
    {
        if (Environment.UserName != "root") return false;
        using var p = Process.Start(new ProcessStartInfo("sh", ["-c", command]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    [Fact]
    public void A_full_disk_or_a_read_only_directory_is_one_line_and_leaves_the_run_intact_and_resumable()
    {
        using var dir = new TempDir();
        var mount = dir["small"];
        Directory.CreateDirectory(mount);
        if (!Root($"mount -t tmpfs -o size=24m tmpfs '{mount}'"))
        {
            // Root ignores file modes, and an unprivileged user cannot mount: nothing here can refuse a write.
            Console.Error.WriteLine("full-disk test SKIPPED: needs root with the right to mount a tmpfs");
            return;
        }
        try
        {
            var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
            var run = Path.Combine(mount, "run");
            string[] train = ["train", "--data-dir", data, "--epochs", "2", "--batch-size", "64", "--widths", "4,4,8,8", "--threads", "1", "--out", run];
            Assert.Equal(0, ThermoProcess.Run(dir.Path, train).Code);
            Assert.Equal(0, ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2").Code);
            var before = Directory.GetFiles(RunLayout.Analysis(run)).ToDictionary(f => f, File.ReadAllBytes);

            // Full: a filler takes what is left.
            Root($"dd if=/dev/zero of='{mount}/filler' bs=1M count=64 2>/dev/null; dd if=/dev/zero of='{mount}/filler-rest' bs=4k 2>/dev/null; true");
            var full = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:1");
            Assert.Equal(ExitCodes.BadInput, full.Code);
            Assert.Single(full.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("thermo: error:"));
            Assert.Contains("No space left on device", full.Err);
            Assert.Contains(RunLayout.TemperatureFile, full.Err);
            Assert.DoesNotContain("   at ", full.Err);
            foreach (var (file, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(file));
            var resumeFull = ThermoProcess.Run(dir.Path, "train", "--resume", run, "--epochs", "3");
            Assert.True(resumeFull.Code == ExitCodes.BadInput, resumeFull.Err);
            Assert.DoesNotContain("   at ", resumeFull.Err);
            Assert.Equal(2, RunManifest.TryLoadQuietly(run)!.LastCompleteEpoch);
            File.Delete(Path.Combine(mount, "filler"));
            File.Delete(Path.Combine(mount, "filler-rest"));

            // Read-only: refused in one line, and the run still resumes once it is writable again.
            Assert.True(Root($"mount -o remount,ro '{mount}'"));
            var readOnly = ThermoProcess.Run(dir.Path, "train", "--resume", run, "--epochs", "3");
            Assert.Equal(ExitCodes.BadInput, readOnly.Code);
            Assert.Contains("Read-only file system", readOnly.Err);
            Assert.DoesNotContain("   at ", readOnly.Err);
            Assert.True(Root($"mount -o remount,rw '{mount}'"));
            var resumed = ThermoProcess.Run(dir.Path, "train", "--resume", run, "--epochs", "3");
            Assert.True(resumed.Code == 0, resumed.Err);
            Assert.Equal(3, RunManifest.TryLoadQuietly(run)!.LastCompleteEpoch);
        }
        finally
        {
            Root($"umount -l '{mount}'");
        }
    }
}
