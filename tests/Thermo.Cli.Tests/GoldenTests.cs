using Thermo.Trainer.Tests;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using DuckDB.NET.Data;

namespace Thermo.Cli.Tests;

/// <summary>
/// The golden test of the stages: a fixed tiny run (tests/golden/run: run.json, metrics, gradient
/// noise and 5 snapshots of a 4-epoch fourconv on the synthetic bars of <see cref="TinyData"/>) is
/// analysed, pruned and reported by the real executable, and every table is compared with the dump
/// the code wrote when the fixture was made (tests/golden/expected). It pins the stages' outputs
/// across refactoring: value-identical, not byte-identical, because the pruning stage re-evaluates
/// the model through libtorch, whose float rounding may differ on another CPU — those columns
/// (test_loss, test_accuracy) are compared to 1e-5 relative; everything the F# analysis computes to
/// 1e-12 relative, and strings and integers exactly. THERMO_GOLDEN_WRITE=1 rewrites the expectations
/// (only when the stages' outputs are meant to change).
/// </summary>
public class GoldenTests
{
    static string Root()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(d!.FullName, "Thermo.sln"))) d = d.Parent;
        return d.FullName;
    }

    static readonly string[] Tables =
    [
        "analysis/temperature.parquet", "analysis/instantaneous.parquet", "analysis/msd.parquet", "analysis/fits.parquet",
        "pruning/results.parquet", "pruning/curves.parquet",
    ];

    /// <summary>Columns re-evaluated through libtorch: compared to 1e-5 relative.</summary>
    static readonly string[] Evaluated = ["test_loss", "test_accuracy"];

    /// <summary>A table as text, one row per line in a canonical order, doubles round-trippable.</summary>
    static List<string[]> Dump(string path, out string[] names)
    {
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT * FROM read_parquet('{path}') ORDER BY ALL";
        using var reader = command.ExecuteReader();
        names = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToArray();
        var rows = new List<string[]>();
        while (reader.Read())
            rows.Add(Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "NULL" : reader.GetValue(i) switch
            {
                double v => v.ToString("R", CultureInfo.InvariantCulture),
                float v => v.ToString("R", CultureInfo.InvariantCulture),
                var v => Convert.ToString(v, CultureInfo.InvariantCulture)!,
            }).ToArray());
        return rows;
    }

    static bool Close(string expected, string actual, double tolerance)
    {
        if (expected == actual) return true;
        if (!double.TryParse(expected, CultureInfo.InvariantCulture, out var e) || !double.TryParse(actual, CultureInfo.InvariantCulture, out var a)) return false;
        return Math.Abs(e - a) <= tolerance * Math.Max(1e-300, Math.Max(Math.Abs(e), Math.Abs(a)));
    }

    [Fact]
    public void A_fixed_run_analysed_pruned_and_reported_gives_the_recorded_tables()
    {
        using var dir = new TempDir();
        var golden = Path.Combine(Root(), "tests", "golden");
        var run = dir["run"];
        bool write = Environment.GetEnvironmentVariable("THERMO_GOLDEN_WRITE") == "1";
        if (write && !Directory.Exists(Path.Combine(golden, "run")))
        {
            // Making the fixture: a fresh 4-epoch run; its checkpoint is not part of it.
            var made = Path.Combine(golden, "run");
            using (var training = Thermo.Trainer.Training.TrainingRun.Start(TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], 256, 64), 4), made, dir.Path, new Thermo.Trainer.Training.SilentProgress()))
                training.Run();
            Directory.Delete(Path.Combine(made, "checkpoint"), recursive: true);
            // The data's temporary directory is no part of the fixture: a placeholder, replaced below.
            var fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(made, "run.json")))!;
            fixture["config"]!["dataDir"] = "data";
            fixture["dataset"]!["source"] = "data";
            File.WriteAllText(Path.Combine(made, "run.json"), fixture.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        }
        foreach (var file in Directory.EnumerateFiles(Path.Combine(golden, "run"), "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(run, Path.GetRelativePath(Path.Combine(golden, "run"), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        // The run's data are the synthetic bars, regenerated (deterministically) where run.json says.
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
        var data = Directory.Exists(dir["data"]) ? dir["data"] : TinyData.WriteMnistLike(dir["data"], 256, 64);
        manifest["config"]!["dataDir"] = data;
        manifest["dataset"]!["source"] = data;
        File.WriteAllText(Path.Combine(run, "run.json"), manifest.ToJsonString());

        foreach (var args in new[]
        {
            new[] { "analyze", run, "--window", "last:3", "--groups", "filter", "--quiet" },
            ["prune", run, "--draws", "2", "--quiet"],
            ["report", run, "--quiet"],
        })
        {
            var result = ThermoProcess.Run(dir.Path, args);
            Assert.True(result.Code == 0, $"thermo {string.Join(' ', args)}: {result.Err}");
        }

        var expectedDir = Path.Combine(golden, "expected");
        foreach (var table in Tables)
        {
            var rows = Dump(Path.Combine(run, table), out var names);
            var file = Path.Combine(expectedDir, table.Replace('/', '-').Replace(".parquet", ".tsv"));
            if (write)
            {
                Directory.CreateDirectory(expectedDir);
                File.WriteAllLines(file, rows.Select(r => string.Join('\t', r)).Prepend(string.Join('\t', names)));
                continue;
            }
            var lines = File.ReadAllLines(file);
            Assert.Equal(lines[0], string.Join('\t', names));
            Assert.True(lines.Length - 1 == rows.Count, $"{table}: {rows.Count} rows, expected {lines.Length - 1}");
            for (int i = 0; i < rows.Count; i++)
            {
                var expected = lines[i + 1].Split('\t');
                for (int c = 0; c < names.Length; c++)
                    Assert.True(Close(expected[c], rows[i][c], Evaluated.Contains(names[c]) ? 1e-5 : 1e-12),
                        $"{table} row {i} column {names[c]}: {rows[i][c]}, expected {expected[c]}");
            }
        }
        // The report's text (its tables and captions), with the temporary run path and the figures'
        // pixels (font rendering is the machine's) taken out.
        var html = System.Text.RegularExpressions.Regex.Replace(
            File.ReadAllText(Path.Combine(run, "report", "figures.html")).Replace(run, "RUN"), "base64,[A-Za-z0-9+/=]+", "base64,");
        var htmlFile = Path.Combine(expectedDir, "report-figures.html");
        if (write) File.WriteAllText(htmlFile, html, new UTF8Encoding(false));
        else Assert.Equal(File.ReadAllText(htmlFile), html);
    }
}
