using Thermo.Pipeline.Pruning;
using System.Text.RegularExpressions;
using Thermo.Analysis;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Protocols;

/// <summary>
/// A results ledger: per condition and seed, the compact part of a complete, analysed and pruned run
/// (LEDGER/&lt;condition&gt;/seed-S/ holding the manifest, metrics, gradient noise, the final
/// snapshot, analysis/ and pruning/) — everything the tables, figures and statistics need, without the
/// per-epoch snapshots and checkpoint, so that it can be kept in version control. An entry appears
/// whole or not at all (copied into a temporary directory, then renamed), so its presence means the run
/// is complete.
/// </summary>
public static partial class PruningLedger
{
    /// <summary>Files of a run directory an entry keeps, beside the final snapshot.</summary>
    static readonly string[] Files = [RunLayout.ManifestFile, RunLayout.MetricsFile, RunLayout.GradNoiseFile];
    /// <summary>Directories of a run directory an entry keeps whole.</summary>
    static readonly string[] Directories = [RunLayout.AnalysisDirectory, RunLayout.PruningDirectory];

    public static string Entry(string ledger, string condition, int seed) => Path.Combine(ledger, condition, $"seed-{seed}");

    public static bool Has(string ledger, string condition, int seed) => Directory.Exists(Entry(ledger, condition, seed));

    [GeneratedRegex(@"^seed-(\d+)$")]
    private static partial Regex SeedName();

    /// <summary>The entries of a condition, by seed.</summary>
    public static IReadOnlyList<string> Entries(string ledger, string condition)
    {
        var dir = Path.Combine(ledger, condition);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateDirectories(dir)
            .Select(d => (Dir: d, Match: SeedName().Match(Path.GetFileName(d))))
            .Where(d => d.Match.Success)
            .OrderBy(d => int.Parse(d.Match.Groups[1].Value))
            .Select(d => d.Dir).ToList();
    }

    /// <summary>Copies the compact part of <paramref name="runDirectory"/> into <paramref name="entry"/>, all or nothing.</summary>
    public static void Add(string runDirectory, string entry)
    {
        if (Directory.Exists(entry)) throw new ArtifactException($"{entry}: the ledger already holds this run", entry);
        // The whole series is checked against run.json before the run is kept: its tables came from it.
        var final = SnapshotSeries.EpochFiles(runDirectory, SnapshotSpacing.FromManifest).Select(f => f.Path).LastOrDefault()
            ?? throw new ArtifactException($"{runDirectory}: no snapshot to keep in the ledger", runDirectory);
        foreach (var f in Files.Where(f => !File.Exists(Path.Combine(runDirectory, f))))
            throw new ArtifactException($"{runDirectory}: no {f}, so it cannot enter the ledger", Path.Combine(runDirectory, f));
        foreach (var d in Directories.Where(d => !Directory.Exists(Path.Combine(runDirectory, d))))
            throw new ArtifactException($"{runDirectory}: no {d}/ (analyse and prune the run first), so it cannot enter the ledger", Path.Combine(runDirectory, d));

        AtomicFiles.ReplaceDirectory(entry, temp =>
        {
            Directory.CreateDirectory(RunLayout.Snapshots(temp));
            foreach (var f in Files) File.Copy(Path.Combine(runDirectory, f), Path.Combine(temp, f));
            WithoutMachinePaths(RunLayout.Manifest(temp));
            File.Copy(final, Path.Combine(RunLayout.Snapshots(temp), Path.GetFileName(final)));
            foreach (var d in Directories) CopyTree(Path.Combine(runDirectory, d), Path.Combine(temp, d));
            RecordDigests(temp, entry);
        });
    }

    /// <summary>
    /// A ledger is kept in version control and read on other machines: the data set's source directory,
    /// recorded absolute, is rewritten relative to the working directory (or reduced to its name when it
    /// lies elsewhere). The data set is identified by its name and digest, which stay.
    /// </summary>
    static void WithoutMachinePaths(string manifest)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifest))!;
        if (json["dataset"]?["source"]?.GetValue<string>() is { } source && Path.IsPathRooted(source))
        {
            var relative = Path.GetRelativePath(Directory.GetCurrentDirectory(), source);
            json["dataset"]!["source"] = relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative)
                ? Path.GetFileName(source.TrimEnd(Path.DirectorySeparatorChar)) : relative.Replace(Path.DirectorySeparatorChar, '/');
            File.WriteAllText(manifest, json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        }
    }

    /// <summary>Copies a directory, leaving out hidden leftovers of interrupted writes and the fine-tuned
    /// run of a structural pruning (a whole run, with per-epoch snapshots and a checkpoint).</summary>
    internal static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from).Where(f => !Path.GetFileName(f).StartsWith('.')))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.EnumerateDirectories(from).Where(d => !Path.GetFileName(d).StartsWith('.') && Path.GetFileName(d) != RunLayout.FinetuneDirectory))
            CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)));
    }

    /// <summary>
    /// Copies only the training record of <paramref name="runDirectory"/> (manifest, metrics, gradient
    /// noise) into <paramref name="entry"/>, all or nothing: what an experiment that reads no weights keeps.
    /// </summary>
    public static void AddTrainingRecord(string runDirectory, string entry)
    {
        if (Directory.Exists(entry)) throw new ArtifactException($"{entry}: the ledger already holds this run", entry);
        foreach (var f in Files.Where(f => !File.Exists(Path.Combine(runDirectory, f))))
            throw new ArtifactException($"{runDirectory}: no {f}, so it cannot enter the ledger", Path.Combine(runDirectory, f));
        AtomicFiles.ReplaceDirectory(entry, temp =>
        {
            foreach (var f in Files) File.Copy(Path.Combine(runDirectory, f), Path.Combine(temp, f));
            WithoutMachinePaths(RunLayout.Manifest(temp));
            RecordDigests(temp, entry);
        });
    }

    /// <summary>
    /// The record of an entry's files beside it, <c>seed-S.sha256</c>: a line "DIGEST  PATH" per file, paths
    /// relative to the entry, as <c>sha256sum</c> writes them (so <c>cd seed-S &amp;&amp; sha256sum -c ../seed-S.sha256</c>
    /// checks an entry by hand). Kept beside the entry, not in it: the entries made before records existed
    /// were given theirs, with <c>sha256sum</c>, when records were introduced, without being rewritten.
    /// </summary>
    public static string DigestFile(string entry) => entry.TrimEnd(Path.DirectorySeparatorChar) + ".sha256";

    /// <summary>Whether <paramref name="run"/> is a ledger entry (its digest record lies beside it).</summary>
    public static bool IsEntry(string run) => File.Exists(DigestFile(Path.GetFullPath(run)));

    static IEnumerable<(string Path, string Digest)> Digests(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(directory, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)
            .Select(relative =>
            {
                using var stream = File.OpenRead(Path.Combine(directory, relative));
                return (relative, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream)));
            });

    /// <summary>Writes the digest record of <paramref name="filled"/>'s files as the record of <paramref name="entry"/>
    /// (before the entry appears: a record without its entry is overwritten when the entry is made again).</summary>
    static void RecordDigests(string filled, string entry) =>
        AtomicFiles.WriteAllText(DigestFile(entry), string.Concat(Digests(filled).Select(d => $"{d.Digest}  {d.Path}\n")));

    /// <summary>
    /// Checks an entry against its digest record before anything is built from it: raises
    /// <see cref="ArtifactException"/> naming the entry and the first file that is missing, added or changed,
    /// or the record itself when there is none.
    /// </summary>
    public static void Verify(string entry)
    {
        var record = DigestFile(entry);
        if (!File.Exists(record)) throw new ArtifactException($"{entry}: a ledger entry without its digest record {Path.GetFileName(record)}; it cannot be trusted", record);
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadAllLines(record).Where(l => l.Length > 0))
        {
            var parts = line.Split("  ", 2);
            if (parts.Length != 2 || parts[0].Length != 64) throw new ArtifactException($"{record}: malformed line '{line}' (expected DIGEST  PATH)", record);
            expected[parts[1]] = parts[0];
        }
        var actual = Digests(entry).ToDictionary(d => d.Path, d => d.Digest, StringComparer.Ordinal);
        foreach (var (path, digest) in expected)
        {
            if (!actual.TryGetValue(path, out var found)) throw new ArtifactException($"{entry}: {path} is missing (recorded in {Path.GetFileName(record)})", Path.Combine(entry, path));
            if (found != digest) throw new ArtifactException($"{entry}: {path} has changed since the entry was made (its SHA-256 differs from {Path.GetFileName(record)})", Path.Combine(entry, path));
        }
        foreach (var path in actual.Keys.Where(p => !expected.ContainsKey(p)))
            throw new ArtifactException($"{entry}: {path} was added after the entry was made (not in {Path.GetFileName(record)})", Path.Combine(entry, path));
    }

    /// <summary>The directory of an experiment's tables, figures and summary README beside its runs.</summary>
    public const string TablesDirectory = "tables";

    /// <summary>HOME/tables: an experiment's output set, replaced whole each time it is tabulated.</summary>
    public static string Tables(string home) => Path.Combine(home, TablesDirectory);

    /// <summary>
    /// Writes HOME/README.md, an index that never changes: it points at tables/README.md, so a reader
    /// never finds it out of step with the tables (which are replaced whole).
    /// </summary>
    public static void WriteIndex(string home, string title)
    {
        var text = $"# {title}\n\nThe tables, figures and summary built from the runs here are in [{TablesDirectory}/README.md]({TablesDirectory}/README.md); "
            + $"each tabulation replaces `{TablesDirectory}/` whole. In a results ledger, each `CONDITION/seed-S/` is one run's compact record "
            + "(its manifest and metrics, and what the experiment's tables need of it), checked against `seed-S.sha256` beside it before anything is built from it.\n";
        var path = Path.Combine(home, "README.md");
        if (!File.Exists(path) || File.ReadAllText(path) != text) AtomicFiles.WriteAllText(path, text);
    }

    /// <summary>The file naming the experiment a ledger holds.</summary>
    public const string ExperimentFile = "ledger.json";

    /// <summary>
    /// Claims <paramref name="ledger"/> for <paramref name="experiment"/> (e.g. <c>pruning-paper</c>): the first
    /// experiment written there names it in ledger.json; another experiment's tables and README would
    /// overwrite its, so it is refused (<see cref="SettingException"/> on the ledger).
    /// </summary>
    public static void Claim(string ledger, string experiment)
    {
        var file = Path.Combine(ledger, ExperimentFile);
        if (File.Exists(file))
        {
            string? held;
            try { held = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))?["experiment"]?.GetValue<string>(); }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
            {
                throw new ArtifactException($"{file}: not a ledger's experiment record ({e.Message})", file);
            }
            if (held != experiment)
                throw new SettingException("Ledger", ledger, $"holds the {held} experiment ({ExperimentFile}); give {experiment} a ledger of its own");
            return;
        }
        Directory.CreateDirectory(ledger);
        AtomicFiles.WriteAllText(file, $"{{\n  \"experiment\": \"{experiment}\"\n}}\n");
    }

    /// <summary>Bytes on disk of an entry (for the bench row).</summary>
    public static long Size(string entry) =>
        Directory.EnumerateFiles(entry, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
}
