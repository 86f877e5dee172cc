// Confirmation before destructive actions (forms with data-confirm). A static file, so the
// Content-Security-Policy can forbid inline scripts altogether.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
