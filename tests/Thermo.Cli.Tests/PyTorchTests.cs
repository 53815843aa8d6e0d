using System.Diagnostics;
using System.Text.Json;
using Thermo.Trainer.Tests;

namespace Thermo.Cli.Tests;

/// <summary>
/// Thermo beside real PyTorch (Debian's python3-torch, which the test target installs as root): the
/// docs' recipe for a plain training loop runs and its checkpoints analyse, and a prune mask Thermo
/// writes is applied by PyTorch's own pruning utility. The command-line faults of the checkpoint
/// verbs need no PyTorch.
/// </summary>
public class PyTorchTests
{
    const string Python = "/usr/bin/python3";
    static readonly string Fixtures = Path.Combine(Repository.Root, "tests", "fixtures", "pytorch");

    static (int Code, string Out, string Err) RunPython(params string[] args)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(true); throw new TimeoutException("python " + string.Join(' ', args)); }
        return (p.ExitCode, output, err.Result);
    }

    static bool HasPyTorch()
    {
        if (File.Exists(Python) && RunPython("-c", "import torch").Code == 0) return true;
        Console.Error.WriteLine("PyTorch end-to-end test SKIPPED: Debian's python3-torch is not installed (the test target installs it as root)");
        return false;
    }

    [Fact]
    public void The_docs_recipe_for_a_plain_loop_writes_a_series_thermo_analyses_and_a_mask_pytorch_applies()
    {
        if (!HasPyTorch()) return;
        using var dir = new TempDir();
        var recipe = RunPython(Path.Combine(Repository.Root, "docs", "guide", "pytorch-recipe.py"), "--out", dir["checkpoints"], "--epochs", "4");
        Assert.True(recipe.Code == 0, recipe.Err);
        var analysis = ThermoProcess.Run(dir.Path, "analyze", dir["checkpoints"], "--out", dir["analysis"], "--window", "last:3", "--json");
        Assert.True(analysis.Code == 0, analysis.Err);
        using (var json = JsonDocument.Parse(analysis.Out))
        {
            var root = json.RootElement;
            Assert.Equal("epoch", root.GetProperty("analysis").GetProperty("time_unit").GetString());
            Assert.Equal(["0.weight", "0.bias", "2.weight", "2.bias"], root.GetProperty("analysed").EnumerateArray().Select(e => e.GetString()!).ToArray());
            Assert.All(root.GetProperty("analysis").GetProperty("layers").EnumerateArray(), l => Assert.True(l.GetProperty("temperature").GetDouble() > 0));
        }
        Assert.True(File.Exists(dir["analysis/temperature.parquet"]));
        Assert.False(Directory.EnumerateFileSystemEntries(dir["checkpoints"]).Any(p => p.EndsWith(".parquet") || p.EndsWith(".json")), "nothing written beside the checkpoints");

        // The mask of the fixtures' CNN, applied by PyTorch to the last checkpoint of the plain series.
        var fixtureAnalysis = ThermoProcess.Run(dir.Path, "analyze", Path.Combine(Fixtures, "series", "plain"), "--out", dir["fixture-analysis"], "--window", "0:5");
        Assert.True(fixtureAnalysis.Code == 0, fixtureAnalysis.Err);
        var mask = ThermoProcess.Run(dir.Path, "mask", dir["fixture-analysis"], "--criterion", "hot", "--count", "2", "--layers", "conv1,fc", "--bias", "--out", dir["mask.json"]);
        Assert.True(mask.Code == 0, mask.Err);
        var applied = RunPython(Path.Combine(Fixtures, "apply_mask.py"), dir["mask.json"], Path.Combine(Fixtures, "series", "plain", "epoch_5.pt"));
        Assert.True(applied.Code == 0, applied.Err);
        using var result = JsonDocument.Parse(applied.Out);
        var masked = result.RootElement.GetProperty("masked");
        var zeroed = result.RootElement.GetProperty("zeroed");
        // conv1 [4, 1, 3, 3]: 2 filters × 9 weights; fc [10, 96]: 2 rows × 96; each with its 2 biases.
        Assert.Equal(18, masked.GetProperty("conv1.weight").GetInt32());
        Assert.Equal(192, masked.GetProperty("fc.weight").GetInt32());
        Assert.Equal(2, masked.GetProperty("fc.bias").GetInt32());
        foreach (var tensor in masked.EnumerateObject())
            Assert.True(zeroed.GetProperty(tensor.Name).GetInt32() >= tensor.Value.GetInt32(), $"{tensor.Name}: PyTorch zeroed what the mask names");
        Assert.NotEqual(result.RootElement.GetProperty("output").GetRawText(), result.RootElement.GetProperty("output_unpruned").GetRawText());
    }

    [Fact]
    public void Checkpoint_verbs_refuse_bad_input_with_one_line_and_write_nothing()
    {
        using var dir = new TempDir();
        var series = Path.Combine(Fixtures, "series", "plain");
        var noOut = ThermoProcess.Run(dir.Path, "analyze", series);
        Assert.Equal(2, noOut.Code);
        Assert.Contains("holds checkpoints, not a Thermo run", noOut.Err);
        var missing = ThermoProcess.Run(dir.Path, "import", dir["nowhere"], "--out", dir["run"]);
        Assert.Equal(2, missing.Code);
        Assert.Contains("nowhere", missing.Err);
        var nan = ThermoProcess.Run(dir.Path, "import", Path.Combine(Fixtures, "bad", "nan"), "--out", dir["run"], "--quiet");
        Assert.Equal(2, nan.Code);
        Assert.Contains("holds NaN", nan.Err);
        Assert.Single(nan.Err.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir["run"]));
        var legacy = ThermoProcess.Run(dir.Path, "analyze", Path.Combine(Fixtures, "bad", "legacy_nonzip.pt"), Path.Combine(series, "epoch_1.pt"), "--out", dir["a"]);
        Assert.Equal(2, legacy.Code);
        Assert.Contains("legacy_nonzip.pt", legacy.Err);
        Assert.False(Directory.Exists(dir["a"]));
        var inside = ThermoProcess.Run(dir.Path, "analyze", series, "--out", Path.Combine(series, "analysis"), "--window", "0:5");
        Assert.Equal(2, inside.Code);
        Assert.Contains("which holds the checkpoints", inside.Err);
        var flagOnRun = ThermoProcess.Run(dir.Path, "analyze", dir.Path, "--exclude", "x*");
        Assert.Equal(2, flagOnRun.Code);
        var imported = ThermoProcess.Run(dir.Path, "import", Path.Combine(Fixtures, "series", "huggingface"), "--out", dir["run"]);
        Assert.True(imported.Code == 0, imported.Err);
        var analysed = ThermoProcess.Run(dir.Path, "analyze", dir["run"], "--window", "5:80");
        Assert.True(analysed.Code == 0, analysed.Err);
        Assert.Contains("uneven", analysed.Out);
    }
}
