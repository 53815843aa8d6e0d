using Thermo.Trainer.Tests;
using System.Diagnostics;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

public class ResumeTests
{
    static string[] TrainArgs(string data, string output) =>
        ["train", "--data-dir", data, "--epochs", "6", "--batch-size", "32", "--widths", "4,4,8,8", "--threads", "1", "--out", output];

    [Fact]
    public void A_run_killed_mid_epoch_resumes_to_bitwise_identical_final_weights()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], train: 1280, test: 160);

        var straight = ThermoProcess.Run(dir.Path, TrainArgs(data, dir["straight"]));
        Assert.True(straight.Code == 0, straight.Err);

        // Start the same run and kill it once two epochs are complete, somewhere inside the next epochs.
        ThermoProcess.KillAfterEpoch(dir.Path, dir["killed"], 2, TimeSpan.FromMilliseconds(150), TrainArgs(data, dir["killed"]));
        var interrupted = RunManifest.TryLoad(dir["killed"])!;
        Assert.Equal(RunStatus.Running, interrupted.Status);
        Assert.InRange(interrupted.LastCompleteEpoch, 2, 5);
        // Every file left behind is complete: each snapshot up to the last complete epoch reads back.
        foreach (var file in SnapshotSeries.ListEpochFiles(dir["killed"]).Where(f => f.Time <= interrupted.LastCompleteEpoch))
            Assert.Equal(file.Time, SnapshotReader.ReadFile(file.Path).Epoch);

        var resumed = ThermoProcess.Run(dir.Path, "train", "--resume", dir["killed"]);
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("resuming", resumed.Err);

        var expected = SnapshotSeries.ReadRun(dir["straight"]).ToArray();
        var actual = SnapshotSeries.ReadRun(dir["killed"]).ToArray();
        Assert.Equal(expected.Select(s => s.Epoch), actual.Select(s => s.Epoch));
        for (int e = 0; e < expected.Length; e++)
            for (int t = 0; t < expected[e].Tensors.Length; t++)
                Assert.Equal(expected[e].Tensors[t].Values, actual[e].Tensors[t].Values);
        var metricsA = TrainingRun.ReadMetrics(dir["straight/metrics.parquet"]);
        var metricsB = TrainingRun.ReadMetrics(dir["killed/metrics.parquet"]);
        Assert.Equal(metricsA.Select(m => (m.Epoch, m.Step, m.TestLoss, m.TrainLoss)), metricsB.Select(m => (m.Epoch, m.Step, m.TestLoss, m.TrainLoss)));
        Assert.Equal(RunStatus.Complete, RunManifest.TryLoad(dir["killed"])!.Status);
    }
}
