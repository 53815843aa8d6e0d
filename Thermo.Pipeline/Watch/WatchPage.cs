using System.Collections.Frozen;
using System.Net;
using System.Text;

namespace Thermo.Pipeline.Watch;

/// <summary>
/// The live page's files, embedded in this assembly (Report/Page/, logical names <c>Thermo.Page.*</c>):
/// <c>/</c> is <c>Thermo.Page.index.html</c> when it is there, else a small placeholder listing the runs;
/// <c>/NAME</c> serves only the fixed names below — a dictionary lookup, never a file path.
/// </summary>
public static class WatchPage
{
    /// <summary>The logical name of the page itself.</summary>
    public const string IndexResource = "Thermo.Page.index.html";

    /// <summary>The assets by the name the page asks for: their resource and content type.</summary>
    static readonly FrozenDictionary<string, (string Resource, string ContentType)> Assets = new Dictionary<string, (string, string)>
    {
        ["thermo-page.js"] = ("Thermo.Page.thermo-page.js", "text/javascript; charset=utf-8"),
        ["echarts.min.js"] = ("Thermo.Page.echarts.min.js", "text/javascript; charset=utf-8"),
        ["thermo-page.css"] = ("Thermo.Page.thermo-page.css", "text/css; charset=utf-8"),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    static byte[]? Resource(string logicalName)
    {
        using var stream = typeof(WatchPage).Assembly.GetManifestResourceStream(logicalName);
        if (stream is null) return null;
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>The embedded page, or null while it is not part of the build.</summary>
    public static byte[]? Index() => Resource(IndexResource);

    /// <summary>The asset <paramref name="name"/> and its content type, or null for any name not in the fixed list (or not embedded).</summary>
    public static (byte[] Bytes, string ContentType)? Asset(string name)
    {
        if (!Assets.TryGetValue(name, out var asset)) return null;
        return Resource(asset.Resource) is { } bytes ? (bytes, asset.ContentType) : null;
    }

    /// <summary>The temporary page served while the real one is not embedded: the runs, their status and last epoch.</summary>
    public static string Placeholder(WatchHub hub)
    {
        var html = new StringBuilder();
        html.Append("<!doctype html><html><head><meta charset=\"utf-8\"><title>thermo watch</title></head><body>");
        html.Append("<h1>thermo watch</h1><p>Placeholder page: the live charts are not part of this build. ");
        html.Append("The data is at <code>/api/runs</code> (send the token as the <code>X-Thermo-Token</code> header).</p><ul>");
        for (int id = 0; id < hub.Runs.Count; id++)
        {
            var run = hub.Runs[id];
            var state = run.Error is { } error ? "error: " + error : $"last epoch {run.LastEpoch}{(run.Complete ? ", complete" : "")}";
            html.Append(CultureInfoInvariant($"<li>{id}: {WebUtility.HtmlEncode(run.Name)} — {WebUtility.HtmlEncode(state)}</li>"));
        }
        html.Append("</ul></body></html>");
        return html.ToString();
    }

    static string CultureInfoInvariant(FormattableString text) => FormattableString.Invariant(text);
}
