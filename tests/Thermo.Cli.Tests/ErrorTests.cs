using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Trainer.Tests;
using Thermo.Trainer.Training;
using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Pruning;

namespace Thermo.Cli.Tests;

/// <summary>
/// The libraries' errors carry what and where (a path, a setting in their own words); only the CLI
/// words them with flags and an exit code.
/// </summary>
public class ErrorTests
{
    [Fact]
    public void An_artifact_fault_carries_the_path_at_fault()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["run"]);
        File.WriteAllText(RunLayout.Manifest(dir["run"]), "");
        var empty = Assert.Throws<ArtifactException>(() => ManifestFile.Check(dir["run"]));
        Assert.Equal(RunLayout.Manifest(dir["run"]), empty.Path);
        Assert.Equal($"{RunLayout.Manifest(dir["run"])}: is empty (the run directory is damaged)", empty.Message);

        var absent = Assert.Throws<ArtifactException>(() => RunCollection.FindRuns([dir["nowhere"]]));
        Assert.Equal(dir["nowhere"], absent.Path);
        // The message-only constructor still works, with no path.
        Assert.Equal("", new ArtifactException("x: broken").Path);
    }

    [Fact]
    public void A_directory_without_a_run_is_one_error_wherever_it_is_found()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["empty"]);
        var resume = Assert.Throws<NoRunException>(() => RunDirectory.Prepare(new TrainConfig(), dir["empty"], RunDirectoryMode.Resume));
        Assert.Equal(dir["empty"], resume.Directory);
        Assert.Equal(dir["empty"], resume.Path);
        Assert.Equal(nameof(RunDirectoryMode.Resume), resume.Setting);
        var prune = Assert.Throws<NoRunException>(() => PruneStage.Run([dir["empty"]], new PruneSettings(), dir["artifacts"], _ => { }));
        Assert.Equal(dir["empty"], prune.Directory);
        Assert.Equal("", prune.Setting);
        Assert.Equal($"{dir["empty"]}: holds no run (no {RunLayout.ManifestFile})", prune.Message);
        var collect = Assert.Throws<NoRunException>(() => RunCollection.FindRuns([dir["empty"]]));
        Assert.True(collect.Below);
        Assert.Equal(dir["empty"], collect.Path);
        Assert.EndsWith($"holds no run (no {RunLayout.ManifestFile} in it or below it)", collect.Message);
        // Several directories searched together, none with a run: no one of them is the path at fault.
        Directory.CreateDirectory(dir["other"]);
        var both = Assert.Throws<NoRunException>(() => RunCollection.FindRuns([dir["empty"], dir["other"]]));
        Assert.Equal("", both.Path);
        Assert.Equal([dir["empty"], dir["other"]], both.Directories);
        Assert.Equal($"{dir["empty"]}, {dir["other"]}: holds no run (no {RunLayout.ManifestFile} in it or below it)", both.Message);

        // The CLI words it the same way from every verb, with the flag that gave the directory.
        var noRun = $"{dir["empty"]}: holds no run (no {RunLayout.ManifestFile})";
        var resumed = ThermoProcess.Run(dir.Path, "train", "--resume", dir["empty"]);
        Assert.Equal(ExitCodes.BadInput, resumed.Code);
        Assert.Contains($"thermo: error: --resume: {noRun}", resumed.Err);
        var pruned = ThermoProcess.Run(dir.Path, "prune", dir["empty"], "--out", dir["table"]);
        Assert.Equal(ExitCodes.BadInput, pruned.Code);
        Assert.Contains($"thermo: error: {noRun}", pruned.Err);
    }

    [Fact]
    public void Another_setting_a_detail_names_is_worded_as_its_flag_by_the_cli_only()
    {
        var window = new SettingException("Equilibrium", "", "last:N must have N in 1..5 ({0}), got last:6", "Epochs");
        Assert.Equal("last:N must have N in 1..5 (Epochs), got last:6", window.Message);
        Assert.Equal("--window: last:N must have N in 1..5 (--epochs), got last:6", SettingFlags.Message(window));
        var submit = new SettingException("TrainMissing", "", "trains nothing, so there is nothing to submit; drop {0}", "SlurmScheduler");
        Assert.Equal("--no-train: trains nothing, so there is nothing to submit; drop --scheduler slurm", SettingFlags.Message(submit));
        // A flag of another verb is named with its command; two related settings each in their place.
        var queued = new SettingException("SlurmScheduler", "d", "queued (see {0} d); or give {1}", "Status", "Threads");
        Assert.Equal("d: queued (see Status d); or give Threads", queued.Message);
        Assert.Equal("d: --scheduler slurm: queued (see thermo sweep --status d); or give --threads", SettingFlags.Message(queued));
        // Without related settings a detail is taken as it is, braces and all.
        var plain = new SettingException("Layers", "", "unknown layer '{0}'");
        Assert.Equal(("unknown layer '{0}'", "--layers: unknown layer '{0}'"), (plain.Detail, SettingFlags.Message(plain)));
        Assert.Empty(plain.Related);
    }

    [Fact]
    public void What_a_stage_writes_only_when_asked_is_named_without_flags()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["run"]);
        var steps = Assert.Throws<NotWrittenException>(() => SnapshotSeries.ListStepFiles(dir["run"]));
        Assert.Equal(dir["run"], steps.Path);
        Assert.Equal("StepSnapshotEpochs", steps.WrittenBy);
        Assert.DoesNotContain("--", steps.Message);
        Assert.EndsWith("; train with --step-snapshots K to write them", SettingFlags.Message(steps));

        var curves = Assert.Throws<NotWrittenException>(() => PruningFiles.ReadCurves(dir["run/curves.parquet"]));
        Assert.Equal(nameof(PruneSettings.Curves), curves.WrittenBy);
        Assert.DoesNotContain("--", curves.Message);
        Assert.Equal($"{dir["run/curves.parquet"]}: no prune-fraction curves (prune with --curves layer or all)", SettingFlags.Message(curves));

        var slurm = Assert.Throws<NotWrittenException>(() => SlurmJobs.Status(dir["run"], _ => null));
        Assert.DoesNotContain("--", slurm.Message);
        Assert.StartsWith($"{dir["run"]}: --status: holds no Slurm submission", SettingFlags.Message(slurm));
        Assert.EndsWith("; submit with --scheduler slurm", SettingFlags.Message(slurm));
    }
}
