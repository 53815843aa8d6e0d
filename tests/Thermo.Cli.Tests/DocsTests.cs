using System.Text.RegularExpressions;
using Thermo.Trainer.Tests;

namespace Thermo.Cli.Tests;

/// <summary>The docs a user reads agree with the executable they run.</summary>
public class DocsTests
{
    /// <summary>Each verb and the guide pages that document it.</summary>
    public static TheoryData<string, string[]> Verbs => new()
    {
        { "train", ["train.md"] },
        { "doctor", ["train.md"] },
        { "data", ["data.md"] },
        { "analyze", ["analyze.md", "pytorch.md"] },
        { "import", ["pytorch.md"] },
        { "mask", ["pytorch.md"] },
        { "prune", ["prune.md"] },
        { "reproduce", ["prune.md", "partial-entropy.md", "cluster.md"] },
        { "report", ["report.md"] },
        { "sweep", ["sweep.md", "cluster.md"] },
        { "collect", ["cluster.md"] },
        { "watch", ["watch.md"] },
    };

    [Theory]
    [MemberData(nameof(Verbs))]
    public void Every_option_in_a_verbs_help_appears_in_its_guide_page(string verb, string[] pages)
    {
        using var dir = new TempDir();
        var help = ThermoProcess.Run(dir.Path, verb, "--help");
        Assert.True(help.Code == 0, help.Err);
        var options = Regex.Matches(help.Out, @"(?<=^\s+(-\w, )?)--[a-z][a-z0-9-]*", RegexOptions.Multiline).Select(m => m.Value)
            .Where(o => o is not "--help" and not "--version").Distinct().ToList();
        Assert.NotEmpty(options);
        var text = string.Concat(pages.Select(p => File.ReadAllText(Path.Combine(Repository.Root, "docs", "guide", p))));
        var missing = options.Where(o => !Regex.IsMatch(text, Regex.Escape(o) + @"(?![a-z0-9-])")).ToList();
        Assert.True(missing.Count == 0, $"thermo {verb}: {string.Join(", ", missing)} not in docs/guide/{string.Join(" or ", pages)}");
    }

    [Fact]
    public void Docs_point_at_nothing_outside_the_repository_and_link_to_pages_that_exist()
    {
        var root = Repository.Root;
        var docs = Directory.GetFiles(Path.Combine(root, "docs"), "*.md", SearchOption.AllDirectories).Append(Path.Combine(root, "README.md"));
        foreach (var doc in docs)
        {
            var text = File.ReadAllText(doc);
            Assert.DoesNotContain("../shared", text);
            foreach (Match link in Regex.Matches(text, @"\]\(([^)#:]+)(#[^)]*)?\)"))
            {
                var target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(doc)!, link.Groups[1].Value));
                Assert.True(File.Exists(target) || Directory.Exists(target), $"{Path.GetRelativePath(root, doc)} links to {link.Groups[1].Value}, which does not exist");
            }
        }
    }
}
