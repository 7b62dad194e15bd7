/* The table of contents beside articles and reference pages: a small stand-in
 * for bootstrap-toc (which pkgdown loads from a CDN) so that the site works
 * offline. Toc.init({$nav, $scope}) fills $nav with a nested list of links to
 * the h2/h3 headings of $scope that have (or are given) an id. */
window.Toc = {
  init: function (opts) {
    var $nav = opts.$nav;
    if (!$nav || !$nav.length) return;
    var root = $('<ul class="nav nav-pills flex-column"></ul>');
    var current = null;
    opts.$scope.filter("h2, h3").each(function () {
      var $h = $(this);
      if ($h.closest(".ref-arguments, .ref-examples").length && $h.is("h3")) return;
      var id = $h.attr("id") || $h.closest("[id]").attr("id");
      if (!id) return;
      var text = $h.clone().children(".anchor").remove().end().text().trim();
      var item = $('<li class="nav-item"></li>').append(
        $('<a class="nav-link"></a>').attr("href", "#" + id).text(text)
      );
      if ($h.is("h2") || !current) {
        root.append(item);
        current = $h.is("h2") ? item : null;
      } else {
        var sub = current.children("ul");
        if (!sub.length) sub = $('<ul class="nav nav-pills flex-column"></ul>').appendTo(current);
        sub.append(item);
      }
    });
    $nav.append(root);
  }
};
