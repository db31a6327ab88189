"""The computer agents work on: sessions on a local or Scrapybara backend, their tools, policy and audit."""
