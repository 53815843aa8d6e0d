using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Protocols;

namespace Thermo.Pipeline.Tests;

/// <summary>
/// A results ledger's faults as a library caller meets them: each <see cref="ArtifactException"/> names the
/// file or directory at fault in its <c>Path</c>, not only in its message.
/// </summary>
public class PruningLedgerTests
{
    static string Sha256(string text) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));

    [Fact]
    public void Each_ledger_fault_carries_the_file_at_fault_as_its_path()
    {
        var dir = Directory.CreateTempSubdirectory("thermo-pipeline-tests-").FullName;
        try
        {
            // A run without its files cannot enter the ledger: the Path is the first file it lacks.
            var run = Directory.CreateDirectory(Path.Combine(dir, "run")).FullName;
            var entry = Path.Combine(dir, "ledger", "l2=0", "seed-1");
            var noManifest = Assert.Throws<ArtifactException>(() => PruningLedger.AddTrainingRecord(run, entry));
            Assert.Equal($"{run}: no {RunLayout.ManifestFile}, so it cannot enter the ledger", noManifest.Message);
            Assert.Equal(Path.Combine(run, RunLayout.ManifestFile), noManifest.Path);

            // An entry already there: the entry.
            Directory.CreateDirectory(entry);
            var held = Assert.Throws<ArtifactException>(() => PruningLedger.AddTrainingRecord(run, entry));
            Assert.Equal($"{entry}: the ledger already holds this run", held.Message);
            Assert.Equal(entry, held.Path);

            // An entry without its digest record: the record it lacks.
            var record = PruningLedger.DigestFile(entry);
            var unrecorded = Assert.Throws<ArtifactException>(() => PruningLedger.Verify(entry));
            Assert.StartsWith($"{entry}: a ledger entry without its digest record", unrecorded.Message);
            Assert.Equal(record, unrecorded.Path);

            // A malformed record: the record.
            File.WriteAllText(record, "not a digest line\n");
            Assert.Equal(record, Assert.Throws<ArtifactException>(() => PruningLedger.Verify(entry)).Path);

            // A file changed, missing or added since the entry was made: that file.
            File.WriteAllText(Path.Combine(entry, "a.txt"), "edited");
            File.WriteAllText(record, $"{Sha256("original")}  a.txt\n");
            var changed = Assert.Throws<ArtifactException>(() => PruningLedger.Verify(entry));
            Assert.StartsWith($"{entry}: a.txt has changed since the entry was made", changed.Message);
            Assert.Equal(Path.Combine(entry, "a.txt"), changed.Path);
            File.WriteAllText(record, $"{Sha256("edited")}  a.txt\n{Sha256("b")}  b.txt\n");
            var missing = Assert.Throws<ArtifactException>(() => PruningLedger.Verify(entry));
            Assert.StartsWith($"{entry}: b.txt is missing", missing.Message);
            Assert.Equal(Path.Combine(entry, "b.txt"), missing.Path);
            File.WriteAllText(record, $"{Sha256("edited")}  a.txt\n");
            File.WriteAllText(Path.Combine(entry, "c.txt"), "c");
            var added = Assert.Throws<ArtifactException>(() => PruningLedger.Verify(entry));
            Assert.StartsWith($"{entry}: c.txt was added after the entry was made", added.Message);
            Assert.Equal(Path.Combine(entry, "c.txt"), added.Path);
            File.Delete(Path.Combine(entry, "c.txt"));
            PruningLedger.Verify(entry);

            // A ledger.json that is not an experiment record: that file.
            var ledger = Path.Combine(dir, "ledger");
            File.WriteAllText(Path.Combine(ledger, PruningLedger.ExperimentFile), "{ not json");
            var claim = Assert.Throws<ArtifactException>(() => PruningLedger.Claim(ledger, "pruning-paper"));
            Assert.Equal(Path.Combine(ledger, PruningLedger.ExperimentFile), claim.Path);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
