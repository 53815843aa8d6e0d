using Thermo.Analysis;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Tests;

/// <summary>
/// The reproductions' defaults and checks as a library caller meets them: a bad setting is a
/// <see cref="SettingException"/> naming the protocol's setting, raised before anything is written.
/// </summary>
public class ProtocolValidationTests
{
    [Fact]
    public void The_pruning_papers_defaults_are_a_short_run_and_full_is_the_papers_protocol()
    {
        var quick = PruningPaperReproduction.Defaults(full: false);
        Assert.Equal((5, 20, 10), (quick.Runs, quick.Epochs, quick.Equilibrium));
        Assert.Equal([1e-3], quick.L2s);
        var paper = PruningPaperReproduction.Defaults(full: true);
        Assert.Equal((10, 200, 150), (paper.Runs, paper.Epochs, paper.Equilibrium));
        Assert.Equal([1e-3, 0], paper.L2s);
        Assert.Equal([0.0], PruningPaperReproduction.Defaults(full: true, lrDecay: true).L2s);
        PruningPaperReproduction.Validate(quick);
        PruningPaperReproduction.Validate(paper);
    }

    [Fact]
    public void A_pruning_protocol_with_a_window_longer_than_its_epochs_is_refused_before_anything_is_written()
    {
        var bad = PruningPaperReproduction.Defaults(full: false) with { Epochs = 5, Equilibrium = 6 };
        var e = Assert.Throws<SettingException>(() => PruningPaperReproduction.Validate(bad));
        Assert.Equal(nameof(PruningPaperReproduction.Protocol.Equilibrium), e.Setting);
        // The other setting it needs is named in the library's words; only the CLI names flags.
        Assert.Equal("last:N must have N in 1..5 (Epochs), got last:6", e.Detail);
        Assert.Equal([nameof(PruningPaperReproduction.Protocol.Epochs)], e.Related);
        Assert.Equal("last:N must have N in 1..5 (epochs!), got last:6", e.DetailNaming(s => s.ToLowerInvariant() + "!"));
        Assert.Equal("", e.Run);

        var dir = Path.Combine(Path.GetTempPath(), $"thermo-validate-{Guid.NewGuid():N}");
        var run = Assert.Throws<SettingException>(() => PruningPaperReproduction.Run(bad with { Runs = 1 }, dir, dir, new SilentProgress()));
        Assert.Equal(nameof(PruningPaperReproduction.Protocol.Runs), run.Setting);
        Assert.Equal("need at least 2 runs for a standard deviation, got 1", run.Detail);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void A_setting_that_needs_another_names_it_in_the_librarys_words()
    {
        var p = PruningPaperReproduction.Defaults(full: false);
        var noLedger = Assert.Throws<SettingException>(() => PruningPaperReproduction.Validate(p with { TrainMissing = false }));
        Assert.Equal((nameof(PruningPaperReproduction.Protocol.TrainMissing), "needs Ledger (the runs to tabulate)"), (noLedger.Setting, noLedger.Detail));
        Assert.Equal([nameof(PruningPaperReproduction.Protocol.Ledger)], noLedger.Related);

        var dir = Path.Combine(Path.GetTempPath(), $"thermo-validate-{Guid.NewGuid():N}");
        var submit = Assert.Throws<SettingException>(() => PruningPaperReproduction.Submit(p with { TrainMissing = false, Ledger = dir }, dir, dir, ["thermo"], [],
            new Thermo.Pipeline.Cluster.SlurmSettings(), _ => null, _ => null, new SilentProgress()));
        Assert.Equal((nameof(PruningPaperReproduction.Protocol.TrainMissing), "trains nothing, so there is nothing to submit; drop SlurmScheduler"), (submit.Setting, submit.Detail));
        Assert.Equal([Thermo.Pipeline.Cluster.SlurmJobs.Settings], submit.Related);
        Assert.False(Directory.Exists(dir));

        var pe = PartialEntropyReproduction.Defaults(full: false);
        var threads = Assert.Throws<SettingException>(() => PartialEntropyReproduction.Validate(pe with { Jobs = 2, Threads = 0 }));
        Assert.Equal((nameof(PartialEntropyReproduction.Protocol.Jobs), "give Threads too: each of the trainings run at once uses that many threads"), (threads.Setting, threads.Detail));
        Assert.Equal([nameof(PartialEntropyReproduction.Protocol.Threads)], threads.Related);
        foreach (var e in new[] { noLedger, submit, threads }) Assert.DoesNotContain("--", e.Message);
    }

    [Fact]
    public void A_negative_l2_and_a_bad_draw_count_name_their_settings()
    {
        var p = PruningPaperReproduction.Defaults(full: true);
        var l2 = Assert.Throws<SettingException>(() => PruningPaperReproduction.Validate(p with { L2s = [1e-3, -1] }));
        Assert.Equal((nameof(PruningPaperReproduction.Protocol.L2s), "must be non-negative, got -1"), (l2.Setting, l2.Detail));
        var draws = Assert.Throws<SettingException>(() => PruningPaperReproduction.Validate(p with { Prune = p.Prune with { RandomDraws = 0 } }));
        Assert.Equal(nameof(Thermo.Pipeline.Pruning.PruneSettings.RandomDraws), draws.Setting);
    }

    [Fact]
    public void The_partial_entropy_defaults_are_the_papers_training_and_full_its_length()
    {
        var quick = PartialEntropyReproduction.Defaults(full: false);
        Assert.Equal(("mlp2", 0.9, 256, 20, 2e-3, (int?)20000), (quick.Model, quick.Momentum, quick.BatchSize, quick.Epochs, quick.Lr, quick.TrainLimit));
        var paper = PartialEntropyReproduction.Defaults(full: true);
        Assert.Equal((120, 1e-4, (int?)null, 3), (paper.Epochs, paper.Lr, paper.TrainLimit, paper.Runs));
        PartialEntropyReproduction.Validate(quick);
        PartialEntropyReproduction.Validate(paper);
    }

    [Fact]
    public void A_partial_entropy_grid_holding_a_point_twice_or_a_bad_radius_names_its_setting()
    {
        var p = PartialEntropyReproduction.Defaults(full: false);
        var twice = Assert.Throws<SettingException>(() => PartialEntropyReproduction.Validate(p with { Radii = [0.01, 0.010] }));
        Assert.Equal(PartialEntropyReproduction.Grid, twice.Setting);
        Assert.Equal("the grid holds pla-fc1-R=0.01 twice; give each loss, choice of layers and radius once", twice.Detail);
        var radius = Assert.Throws<SettingException>(() => PartialEntropyReproduction.Validate(p with { Radii = [0.1, -1] }));
        Assert.Equal((nameof(PartialEntropyReproduction.Protocol.Radii), "each R must be positive, got -1"), (radius.Setting, radius.Detail));
        var empty = Assert.Throws<SettingException>(() => PartialEntropyReproduction.Validate(p with { Smoothings = [] }));
        Assert.Equal(PartialEntropyReproduction.SmoothingsAndRadii, empty.Setting);
    }
}
